// Package server is infer's HTTP front end: it speaks the Open Inference
// Protocol (KServe v2) with Triton's extensions, translates each request
// into a runner.Request and back, and measures the latency budget of every
// response. It knows nothing of batching or the runtime.
package server

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/health"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Options configure a Server.
type Options struct {
	// Name and Version are reported by GET /v2.
	Name, Version string
	// MaxBodyBytes bounds a request body, in bytes; larger ones get 413
	// over HTTP and RESOURCE_EXHAUSTED over gRPC (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a request's headers, and a gRPC
	// connection's handshake (0: DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading one HTTP request's body; a body that
	// takes longer gets 408 (0: DefaultReadTimeout).
	ReadTimeout time.Duration
	// IdleTimeout bounds how long an HTTP keep-alive connection, or a gRPC
	// connection with no call open, stays open idle (0: DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxConnections bounds the inference ports' open connections, HTTP
	// and gRPC together; more are closed at accept (0:
	// DefaultMaxConnections). It is lowered to fit the process's
	// descriptor limit, keeping a reserve for the metrics and admin ports.
	MaxConnections int
	// DrainDelay is how long Serve keeps serving, not ready, once its
	// context ends (0: none); GracePeriod bounds the whole shutdown, the
	// delay included (0: DefaultGracePeriod).
	DrainDelay, GracePeriod time.Duration
	// DefaultTimeout is the deadline of infer requests that give no
	// "timeout" parameter; 0 is none.
	DefaultTimeout time.Duration
	// Logger receives request errors and repository changes.
	Logger *slog.Logger
	// AdminToken, when set, is the bearer token every admin call requires
	// (repository load and unload, traffic policies, rollouts, fault
	// injection), on the admin listener and on the public ports alike.
	// Without one, the admin API is served on the admin listener only
	// (AdminHandler), whose address is the protection: the public ports
	// refuse it, unless AdminTrustLoopback.
	AdminToken string
	// AdminTrustLoopback, with no AdminToken, lets loopback callers of the
	// public ports use the admin API, as before there was an admin
	// listener. A sidecar or reverse proxy on the same host forwards
	// outside callers from loopback addresses: do not set it behind one.
	AdminTrustLoopback bool
	// StateDir, when set, keeps traffic policies across restarts.
	StateDir string
	// AllowFaultInjection lets SetFault (and the admin endpoint) inject
	// latency and errors into model versions, for tests and drills.
	AllowFaultInjection bool
}

// DefaultMaxBodyBytes is the default bound on a request body, in bytes.
const DefaultMaxBodyBytes = 64 << 20

// Server serves a model repository over HTTP.
type Server struct {
	repo     *runner.Repository
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	traffic  traffic
	shadow   *shadowing
	rollouts *deploy.Engine
	health   *health.Server // the gRPC health service's state
	draining atomic.Bool
	guards   guards
	faults   faults
}

// New returns a server for repo, restoring the traffic policies kept in
// opts.StateDir.
func New(repo *runner.Repository, opts Options) (*Server, error) {
	if opts.Name == "" {
		opts.Name = "infer"
	}
	opts = opts.withTransportDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if n, fds := maxConnections(opts.MaxConnections); fds > 0 {
		opts.Logger.Warn("the inference ports' connection limit is lowered to fit the open-file limit; raise the limit (ulimit -n) to keep more",
			"max_connections", opts.MaxConnections, "lowered_to", n, "open_file_limit", fds, "reserve", fdReserve)
		opts.MaxConnections = n
	}
	s := &Server{repo: repo, opts: opts, log: opts.Logger, metrics: newMetrics(repo), health: health.NewServer()}
	s.metrics.registry.MustRegister(drift.NewCollector(s.qualityMonitors))
	registerModelControl(s.metrics.registry, repo)
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

// Drain begins a shutdown the Kubernetes way: the server reports itself
// not ready (HTTP ready 503, gRPC health NOT_SERVING, model readiness
// false) so that load balancers stop sending to it, and it keeps serving
// every request that still comes, for as long as they take to notice.
// From then on every response carries "Connection: close", so each
// client's keep-alive connection is closed after its next response rather
// than while it sends a request. Call it, wait a drain delay, then call
// http.Server.Shutdown (and gRPC's GracefulStop), which stop accepting and
// wait for what was accepted.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.health.Shutdown() // every service NOT_SERVING
}

// extensions are the protocol extensions both front ends implement.
func (s *Server) extensions() []string {
	return append([]string{"model_repository", "statistics", "model_configuration"}, protocol.Extensions...)
}

// readyVersions lists model name's ready versions.
func (s *Server) readyVersions(name string) []string {
	var out []string
	for _, st := range s.repo.Index() {
		if st.Name == name && st.State == runner.StateReady {
			out = append(out, strconv.FormatInt(st.Version, 10))
		}
	}
	return out
}

// Ready reports whether the server accepts inference requests: it is not
// draining and at least one model version is ready.
func (s *Server) Ready() bool {
	if s.draining.Load() {
		return false
	}
	for _, st := range s.repo.Index() {
		if st.State == runner.StateReady {
			return true
		}
	}
	return false
}

// testRoutes, set by tests of this package only, adds routes to the mux
// Handler builds, behind the same outer layers as every endpoint.
var testRoutes func(*Server, *http.ServeMux)

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
}

// Handler returns the HTTP handler of the protocol's endpoints, for the
// public port: its admin endpoints answer as Options.AdminToken and
// AdminTrustLoopback say. It serves GET /metrics too, as vLLM does, so
// that a client given only the server's URL finds its metrics; the
// metrics port (Triton's layout) serves the same registry.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v2/health/ready", s.serveReady)
	mux.HandleFunc("GET /v2", s.serveServerMetadata)
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, s.serveModelMetadata)
		mux.HandleFunc("GET "+prefix+"/ready", s.serveModelReady)
		mux.HandleFunc("GET "+prefix+"/config", s.serveModelConfig)
		mux.HandleFunc("GET "+prefix+"/infer-config", s.serveInferConfig)
		mux.HandleFunc("GET "+prefix+"/stats", s.serveModelStats)
		mux.HandleFunc("GET "+prefix+"/quality", s.serveQuality)
		mux.HandleFunc("POST "+prefix+"/infer", s.serveInfer)
	}
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		mux.HandleFunc("POST "+prefix+"/generate", s.serveGenerate)
		mux.HandleFunc("POST "+prefix+"/generate_stream", s.serveGenerate)
	}
	mux.HandleFunc("POST /v1/completions", s.serveOpenAIGenerate)
	mux.HandleFunc("POST /v1/chat/completions", s.serveOpenAIGenerate)
	mux.HandleFunc("GET /v1/models", s.serveOpenAIModels)
	mux.HandleFunc("POST /v1/embeddings", s.serveEmbeddings)
	mux.HandleFunc("GET /v2/models/stats", s.serveModelStats)
	mux.HandleFunc("POST /v2/repository/index", s.serveRepositoryIndex)
	mux.Handle("GET /metrics", s.MetricsHandler())
	s.adminRoutes(mux, true)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errors.New("no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	if testRoutes != nil {
		testRoutes(s, mux)
	}
	return s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, r)
	}))
}

// AdminHandler returns the HTTP handler of the admin listener: the admin
// API (repository load and unload, traffic policies, rollouts, fault
// injection), the repository index, liveness and Go's profiles under
// /debug/pprof/. With an admin token set
// every admin call needs it here too; without one the listener's address
// (loopback by default) is what keeps outside callers away.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /v2/repository/index", s.serveRepositoryIndex)
	s.adminRoutes(mux, false)
	// Go's profiles (CPU, heap, goroutines, mutexes), on the admin
	// listener only: a profile shows the server's insides.
	mux.HandleFunc("GET /debug/pprof/", s.admin(pprof.Index, false))
	mux.HandleFunc("GET /debug/pprof/profile", s.admin(pprof.Profile, false))
	mux.HandleFunc("GET /debug/pprof/trace", s.admin(pprof.Trace, false))
	mux.HandleFunc("GET /debug/pprof/symbol", s.admin(pprof.Symbol, false))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, errors.New("no such admin endpoint: "+r.Method+" "+r.URL.Path))
	})
	return s.guard(mux) // bodies bounded, panics answered and counted, as on the public port
}

// adminRoutes adds the admin endpoints to mux, guarded for the public
// port or the admin listener.
func (s *Server) adminRoutes(mux *http.ServeMux, public bool) {
	admin := func(h http.HandlerFunc) http.HandlerFunc { return s.admin(h, public) }
	mux.HandleFunc("POST /v2/repository/models/{model}/load", admin(s.serveLoad))
	mux.HandleFunc("POST /v2/repository/models/{model}/unload", admin(s.serveUnload))
	mux.HandleFunc("GET /v2/admin/models/{model}/versions", admin(s.serveVersionFolders))
	mux.HandleFunc("GET /v2/admin/models/{model}/traffic", admin(s.serveGetPolicy))
	mux.HandleFunc("PUT /v2/admin/models/{model}/traffic", admin(s.servePutPolicy))
	mux.HandleFunc("DELETE /v2/admin/models/{model}/traffic", admin(s.serveDeletePolicy))
	mux.HandleFunc("GET /v2/admin/models/{model}/shadow", admin(s.serveShadowSummary))
	mux.HandleFunc("POST /v2/admin/models/{model}/rollout", admin(s.serveStartRollout))
	mux.HandleFunc("GET /v2/admin/models/{model}/rollout", admin(s.serveGetRollout))
	mux.HandleFunc("POST /v2/admin/models/{model}/rollout/{command}", admin(s.serveRolloutCommand))
	mux.HandleFunc("PUT /v2/admin/models/{model}/versions/{version}/fault", admin(s.servePutFault))
	mux.HandleFunc("DELETE /v2/admin/models/{model}/versions/{version}/fault", admin(s.servePutFault))
}
