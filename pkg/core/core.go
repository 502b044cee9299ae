// Package core is infer's serving core: the one place every inference
// goes through, whichever protocol it came in by. Front ends (the KServe
// v2 HTTP API, the gRPC API, the OpenAI-compatible endpoints) decode a
// request into a Call, hand it to Core.Infer and encode its Result; the
// core routes it (traffic policies, shadow copies), guards it (response
// cache, circuit breaker, fallbacks, injected faults), queues it on the
// model version's runner, times its phases and counts it. It knows no
// wire format: Triton's split of front ends and core is the model.
//
// The core also owns what the admin API and the rollout engine change:
// traffic policies, repository loads and unloads, faults, and the
// metrics, shadow comparisons and quality monitors a rollout reads.
package core

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Options configure a Core.
type Options struct {
	// DefaultTimeout is the deadline of calls that give none; 0 is none.
	DefaultTimeout time.Duration
	// Logger receives request errors and repository changes (nil:
	// slog.Default()).
	Logger *slog.Logger
	// AdminToken and AdminTrustLoopback decide who may call the admin API
	// (Authorize): see server.Options.
	AdminToken         string
	AdminTrustLoopback bool
	// StateDir, when set, keeps traffic policies and rollouts across
	// restarts.
	StateDir string
	// AllowFaultInjection lets SetFault inject latency and errors into
	// model versions, for tests and drills.
	AllowFaultInjection bool
	// MetricsCompat adds another server's metric families to the core's
	// own (MetricsCompatTriton: Triton's nv_inference_*).
	MetricsCompat MetricsCompat
}

// Core serves a model repository to every front end.
type Core struct {
	repo     *runner.Repository
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	traffic  traffic
	shadow   *shadowing
	rollouts *deploy.Engine
	draining atomic.Bool
	guards   guards
	faults   faults
	boot     string // this server's start identity, stamped on the figures it reports
}

// New returns the core of repo, restoring the traffic policies and
// rollouts kept in opts.StateDir.
func New(repo *runner.Repository, opts Options) (*Core, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, err := ParseMetricsCompat(string(opts.MetricsCompat)); err != nil {
		return nil, err
	}
	s := &Core{repo: repo, opts: opts, log: opts.Logger, metrics: newMetrics(repo), boot: newBoot()}
	s.metrics.registry.MustRegister(drift.NewCollector(s.qualityMonitors))
	registerModelControl(s.metrics.registry, repo, s.metrics.forget)
	s.metrics.registry.MustRegister(compositeCollector{repo})
	if opts.MetricsCompat == MetricsCompatTriton {
		s.metrics.registry.MustRegister(tritonCollector{s.metrics})
	}
	s.faults.allowed = opts.AllowFaultInjection
	s.guards.log = s.log
	s.guards.trips = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infer_circuit_transitions_total",
		Help: "Circuit breaker state changes by the state entered (open, half-open, closed).",
	}, []string{"model", "version", "to"})
	s.metrics.registry.MustRegister(trafficCollector{&s.traffic}, s.guards.trips, guardCollector{&s.guards})
	s.shadow = newShadowing(s.metrics.registry)
	if opts.StateDir != "" {
		s.traffic.store = &deploy.Store{Dir: opts.StateDir}
		if err := s.restorePolicies(); err != nil {
			s.shadow.close()
			return nil, err
		}
	}
	var err error
	if s.rollouts, err = deploy.NewEngine(s, s.traffic.store, s.log); err != nil {
		s.shadow.close()
		return nil, err
	}
	return s, nil
}

// Close stops the core's background work (rollout drivers, shadow
// workers); call it after the front ends have stopped. Rollouts in
// progress resume when a core over the same state folder starts.
func (s *Core) Close() {
	s.rollouts.Close()
	s.shadow.close()
}

// Repository returns the model repository the core serves.
func (s *Core) Repository() *runner.Repository { return s.repo }

// Registry returns the Prometheus registry of the core's metrics, which
// front ends and the assembly add their own collectors to.
func (s *Core) Registry() *prometheus.Registry { return s.metrics.registry }

// Rollouts returns the rollout engine that drives the core's traffic.
func (s *Core) Rollouts() *deploy.Engine { return s.rollouts }

// Logger returns the core's logger.
func (s *Core) Logger() *slog.Logger { return s.log }

// Drain marks the core as draining: Ready and model readiness turn false,
// every call is still served, and each Result says Draining so that a
// front end asks its client to move away (HTTP: "Connection: close").
func (s *Core) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Core) Draining() bool { return s.draining.Load() }

// Extensions are the protocol extensions every front end implements.
func Extensions() []string {
	return append([]string{"model_repository", "statistics", "model_configuration"}, protocol.Extensions...)
}

// ReadyVersions lists model name's ready versions.
func (s *Core) ReadyVersions(name string) []string {
	var out []string
	for _, st := range s.repo.Index() {
		if st.Name == name && st.State == runner.StateReady {
			out = append(out, strconv.FormatInt(st.Version, 10))
		}
	}
	return out
}

// Ready reports whether the server accepts inference requests: it is not
// draining and at least one model version is ready or loads at its first
// request (on-demand mode, where a server may rightly hold none loaded).
func (s *Core) Ready() bool {
	if s.draining.Load() {
		return false
	}
	for _, st := range s.repo.Index() {
		if st.State == runner.StateReady || st.OnDemand {
			return true
		}
	}
	return false
}

// ModelReady reports whether the version a client names (version "":
// the latest) is ready to serve, and the core is not draining.
func (s *Core) ModelReady(name, version string) bool {
	_, err := s.Resolve(name, version)
	return err == nil && !s.draining.Load()
}

// Resolve returns the ready model version a request names; an empty
// version means the latest ready one. It never loads one. It fails with
// runner.ErrModelNotFound for a version that is not a positive integer.
func (s *Core) Resolve(name, version string) (*runner.Model, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	return s.repo.Model(name, v)
}

// Acquire is Resolve for a request about to use the version: where the
// repository loads on demand, it waits (bounded by ctx) for a version
// that is not loaded, and holds it loaded until ctx ends.
func (s *Core) Acquire(ctx context.Context, name, version string) (*runner.Model, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	return s.repo.Acquire(ctx, name, v)
}

// parseVersion reads a request's version: "" is 0, the latest.
func parseVersion(version string) (int64, error) {
	if version == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: version %s is not a positive integer", runner.ErrModelNotFound, protocol.Clip(version))
	}
	return n, nil
}

// VersionStats is one ready model version's statistics.
type VersionStats struct {
	Name, Version string
	runner.Stats
}

// Stats returns the statistics of the ready versions that name and version
// select (empty: all), the source of Triton's statistics extension over
// both protocols. It fails when a name is given but resolves to no ready
// version.
func (s *Core) Stats(name, version string) ([]VersionStats, error) {
	var out []VersionStats
	for _, st := range s.repo.Index() {
		v := strconv.FormatInt(st.Version, 10)
		if name != "" && st.Name != name || version != "" && version != v || st.State != runner.StateReady {
			continue
		}
		if m, err := s.repo.Model(st.Name, st.Version); err == nil {
			out = append(out, VersionStats{st.Name, v, m.Stats()})
		}
	}
	if name != "" && len(out) == 0 {
		if _, err := s.Resolve(name, version); err != nil {
			return nil, err
		}
	}
	return out, nil
}
