package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// FallbackHeader names, on a response a fallback gave, which one: cache,
// model:NAME, static or unavailable. gRPC sends it as trailing metadata.
const FallbackHeader = "Inference-Fallback"

// TrailerFallback is FallbackHeader in gRPC metadata and parameters.
const TrailerFallback = "inference-fallback"

// Fallback kinds, as FallbackHeader and the metrics name them.
const (
	viaCache       = "cache"
	viaModel       = "model"
	viaStatic      = "static"
	ViaUnavailable = "unavailable"
)

// errCacheHit marks, inside the breaker, an answer the response cache
// gave: it says nothing of the model's health, so it is not counted.
var errCacheHit = errors.New("answered from the cache")

// errCircuitOpen refuses a request to a model version whose breaker is
// open when no fallback answered; it maps to 503.
var errCircuitOpen = errors.New("circuit open")

// CircuitOpen reports whether err is a refusal by an open circuit breaker.
func CircuitOpen(err error) bool { return errors.Is(err, errCircuitOpen) }

// unavailableError is a 503 with the time after which to retry.
type unavailableError struct {
	model      string
	retryAfter time.Duration
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("model %q is unavailable: its circuit breaker is open (retry after %v)", e.model, e.retryAfter.Round(time.Second))
}

func (e *unavailableError) Unwrap() error { return errCircuitOpen }

// RetryAfter returns the whole seconds to put in a Retry-After header.
func RetryAfter(err error) (string, bool) {
	var u *unavailableError
	var b *runner.BudgetError
	var l *runner.LoadError
	var w *runner.LoadWaitError
	var after time.Duration
	switch {
	case errors.As(err, &w):
		after = time.Second
	case errors.As(err, &u):
		after = u.retryAfter
	case errors.As(err, &b):
		if b.RetryAfter <= 0 {
			return "", false // larger than the whole budget
		}
		after = b.RetryAfter
	case errors.As(err, &l):
		after = time.Until(l.RetryAt)
	default:
		return "", false
	}
	return strconv.Itoa(max(1, int((after+time.Second-1)/time.Second))), true
}

// guard is one model version's circuit breaker and fallback chain.
type guard struct {
	model    *runner.Model
	breaker  *gobreaker.CircuitBreaker[*runner.Response]
	openFor  time.Duration
	fallback []fallbackStep
	opened   time.Time // when the breaker last opened (under mu)
	mu       sync.Mutex
}

type fallbackStep struct {
	runner.FallbackStep
	static []tensor.Tensor
}

// guards holds each model version's guard, nil for those without a
// breaker.
type guards struct {
	by    perModel[*guard]
	trips *prometheus.CounterVec // model, version, to (state)
	log   *slog.Logger
}

func (g *guards) get(m *runner.Model) *guard { return g.by.get(m, g.newGuard) }

// newGuard returns m's guard, or nil when m has no circuit breaker.
func (g *guards) newGuard(m *runner.Model) *guard {
	cfg := m.Config().CircuitBreaker
	if !cfg.Enabled {
		return nil
	}
	meta := m.Metadata()
	version := strconv.FormatInt(meta.Version, 10)
	gd := &guard{model: m, openFor: time.Duration(cfg.OpenFor)}
	for _, f := range m.Config().Fallback {
		step := fallbackStep{FallbackStep: f}
		if f.Static != nil {
			step.static, _ = f.Static.Tensors() // validated at load
		}
		gd.fallback = append(gd.fallback, step)
	}
	window := time.Duration(cfg.Window)
	gd.breaker = gobreaker.NewCircuitBreaker[*runner.Response](gobreaker.Settings{
		Name:         meta.Name + ":" + version,
		MaxRequests:  uint32(cfg.HalfOpenRequests),
		Interval:     window,
		BucketPeriod: window / 10,
		Timeout:      time.Duration(cfg.OpenFor),
		ReadyToTrip: func(c gobreaker.Counts) bool {
			// Requests counts the excluded ones (bad requests, shed
			// load, cache hits) too; they are no evidence either way.
			n := c.Requests - min(c.TotalExclusions, c.Requests)
			return n >= uint32(cfg.MinRequests) && float64(c.TotalFailures) >= cfg.FailureRate*float64(n)
		},
		IsExcluded: func(err error) bool { return err != nil && (errors.Is(err, errCacheHit) || !serverFault(err)) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				gd.mu.Lock()
				gd.opened = time.Now()
				gd.mu.Unlock()
			}
			g.trips.WithLabelValues(meta.Name, version, to.String()).Inc()
			g.log.Info("circuit breaker", "model", meta.Name, "version", version, "from", from.String(), "to", to.String())
		},
	})
	return gd
}

// serverFault reports whether err is the model version's failure, which
// counts against its breaker: errors and timeouts, not bad requests, shed
// load or clients that left.
func serverFault(err error) bool {
	switch Status(err) {
	case http.StatusInternalServerError, http.StatusGatewayTimeout:
		return true
	}
	return errors.Is(err, runner.ErrModelNotReady)
}

// untilHalfOpen is how long the breaker stays open from now.
func (gd *guard) untilHalfOpen() time.Duration {
	gd.mu.Lock()
	defer gd.mu.Unlock()
	return max(gd.openFor-time.Since(gd.opened), 0)
}

// answer runs req through the guard: on the model version while its
// breaker lets it, else down the fallback chain. via names the fallback
// that answered ("" when the model did).
func (s *Core) answer(ctx context.Context, gd *guard, req *runner.Request) (*runner.Response, string, error) {
	m := gd.model
	resp, err := gd.breaker.Execute(func() (*runner.Response, error) {
		r, err := s.execute(ctx, m, req)
		if err == nil && r.FromCache {
			return r, errCacheHit
		}
		return r, err
	})
	if errors.Is(err, errCacheHit) {
		return resp, "", nil
	}
	if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
		return resp, "", err
	}
	name := m.Metadata().Name
	for _, f := range gd.fallback {
		switch {
		case f.Cache:
			if r, ok := m.Cached(req); ok {
				return r, viaCache, nil
			}
		case f.Model != "":
			fname, fversion, _ := strings.Cut(f.Model, ":")
			other, err := s.Resolve(fname, fversion)
			if err != nil || other == m {
				continue
			}
			var r *runner.Response
			if og := s.guards.get(other); og != nil {
				r, err = og.breaker.Execute(func() (*runner.Response, error) { return s.execute(ctx, other, req) })
			} else {
				r, err = s.execute(ctx, other, req)
			}
			if err == nil {
				return r, viaModel + ":" + fname, nil
			}
		case f.Static != nil:
			meta := m.Metadata()
			return &runner.Response{ModelName: meta.Name, ModelVersion: meta.Version, ID: req.ID, Outputs: f.static}, viaStatic, nil
		case f.Unavailable != nil:
			wait := time.Duration(f.Unavailable.RetryAfter)
			if wait == 0 {
				wait = gd.untilHalfOpen()
			}
			return nil, ViaUnavailable, &unavailableError{model: name, retryAfter: wait}
		}
	}
	return nil, ViaUnavailable, &unavailableError{model: name, retryAfter: gd.untilHalfOpen()}
}

// Fault is an injected failure of one model version, for tests and
// drills: Latency added before each request, and ErrorRate of requests
// failed (after the latency) with a 500.
type Fault struct {
	Latency   time.Duration `json:"latency"`
	ErrorRate float64       `json:"error_rate"`
}

// errInjected is a failure a Fault made.
var errInjected = errors.New("injected fault")

// faults holds the faults set, by model and version.
type faults struct {
	mu      sync.RWMutex
	allowed bool
	by      map[string]Fault // "model:version"
}

func faultKey(model string, version int64) string {
	return model + ":" + strconv.FormatInt(version, 10)
}

// FaultsAllowed reports whether SetFault may inject faults
// (Options.AllowFaultInjection).
func (s *Core) FaultsAllowed() bool { return s.faults.allowed }

// SetFault injects f into model's version (nil clears it). It fails
// unless the server was started with Options.AllowFaultInjection.
func (s *Core) SetFault(model string, version int64, f *Fault) error {
	if !s.faults.allowed {
		return errors.New("fault injection is off: start the server with --allow-fault-injection")
	}
	if f != nil && (f.Latency < 0 || f.ErrorRate < 0 || f.ErrorRate > 1) {
		return fmt.Errorf("%w: fault: latency %v, error rate %v: want a latency of 0 or more and an error rate in [0, 1]", protocol.ErrBadRequest, f.Latency, f.ErrorRate)
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if f == nil {
		delete(s.faults.by, faultKey(model, version))
		s.log.Warn("fault cleared", "model", model, "version", version)
		return nil
	}
	if s.faults.by == nil {
		s.faults.by = map[string]Fault{}
	}
	s.faults.by[faultKey(model, version)] = *f
	s.log.Warn("fault injected", "model", model, "version", version, "latency", f.Latency, "error_rate", f.ErrorRate)
	return nil
}

// injected applies the fault set on m, if any: it waits out the latency
// (or ctx) and then fails at the error rate.
func (s *Core) injected(ctx context.Context, m *runner.Model) error {
	if !s.faults.allowed {
		return nil
	}
	meta := m.Metadata()
	s.faults.mu.RLock()
	f, ok := s.faults.by[faultKey(meta.Name, meta.Version)]
	s.faults.mu.RUnlock()
	if !ok {
		return nil
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %v", runner.ErrDeadlineExceeded, ctx.Err())
			}
			return ctx.Err()
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		return fmt.Errorf("model %q version %d: %w", meta.Name, meta.Version, errInjected)
	}
	return nil
}

// execute runs req on m, after any injected fault.
func (s *Core) execute(ctx context.Context, m *runner.Model, req *runner.Request) (*runner.Response, error) {
	if err := s.injected(ctx, m); err != nil {
		return nil, err
	}
	if g := generate.Of(m); g != nil {
		return s.inferGenerator(ctx, g, m, req)
	}
	return m.Infer(ctx, req)
}
