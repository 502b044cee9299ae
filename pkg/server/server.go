// Package server assembles infer's serving core and its front ends (the
// KServe v2 HTTP API, the gRPC API, the OpenAI-compatible endpoints, the
// admin API) into one server, and serves them on their listeners with
// bounded connections and a Kubernetes-style drain.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/infer-serving/infer/pkg/admin"
	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/grpcapi"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/openai"
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
	// ReadTimeout bounds reading one HTTP request's body, from the end of
	// its headers, and a gRPC call's wait for its request message, from
	// its headers; a body that takes longer gets 408, a call
	// DEADLINE_EXCEEDED (0: DefaultReadTimeout).
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
	// MetricsCompat adds another server's metric families to infer's own
	// (core.MetricsCompatTriton: Triton's nv_inference_*).
	MetricsCompat core.MetricsCompat
}

// DefaultMaxBodyBytes is the default bound on a request body, in bytes.
const DefaultMaxBodyBytes = 64 << 20

// Names the front ends share with their clients.
const (
	// FallbackHeader names, on a response a fallback gave, which one.
	FallbackHeader = core.FallbackHeader
	// BatchSizeHeader carries the rows of the batch a request ran in.
	BatchSizeHeader = httpapi.BatchSizeHeader
	// TrailerServerTiming and TrailerBatchSize are the gRPC trailers of
	// every ModelInfer response.
	TrailerServerTiming = grpcapi.TrailerServerTiming
	TrailerBatchSize    = grpcapi.TrailerBatchSize
)

// Fault is an injected failure of one model version (SetFault).
type Fault = core.Fault

// ShadowSummary is what mirroring a model has found so far.
type ShadowSummary = core.ShadowSummary

// Server is the serving core with its front ends.
type Server struct {
	*core.Core
	opts   Options
	log    *slog.Logger
	health *health.Server // the gRPC health service's state
	http   *httpapi.API
	openai *openai.API
	admin  *admin.API
	// receiving bounds the gRPC calls held, arriving or waiting for answers.
	receiving *grpcapi.ReceiveBudget
	// messages bounds a gRPC call's wait for its request message.
	messages *grpcapi.MessageWait
	// drained, when a test sets it, ends Serve's drain delay once closed.
	drained chan struct{}
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
	c, err := core.New(repo, core.Options{DefaultTimeout: opts.DefaultTimeout, Logger: opts.Logger,
		AdminToken: opts.AdminToken, AdminTrustLoopback: opts.AdminTrustLoopback,
		StateDir: opts.StateDir, AllowFaultInjection: opts.AllowFaultInjection, MetricsCompat: opts.MetricsCompat})
	if err != nil {
		return nil, err
	}
	return &Server{Core: c, opts: opts, log: opts.Logger, health: health.NewServer(),
		http:      httpapi.New(c, httpapi.Options{Name: opts.Name, Version: opts.Version, MaxBodyBytes: opts.MaxBodyBytes}),
		openai:    openai.New(c, opts.MaxBodyBytes),
		admin:     admin.New(c),
		receiving: grpcapi.NewReceiveBudget(grpcReceiving*opts.MaxBodyBytes, opts.Logger),
		messages:  grpcapi.NewMessageWait(opts.ReadTimeout),
	}, nil
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
	s.Core.Drain()
	s.health.Shutdown() // every service NOT_SERVING
}

// RegisterGRPC adds the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService) and the standard gRPC health service to
// g. Drain turns the health status to NOT_SERVING.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	grpcapi.Register(g, s.Core, s.health, grpcapi.Options{Name: s.opts.Name, Version: s.opts.Version, Receiving: s.receiving})
}

// allowed returns the methods mux serves r's path with, when r came to
// the catch-all route: a path served by another method is a 405 naming
// them (the inference endpoint asked with GET), not a 404.
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

// testRoutes, set by tests of this package only, adds routes to the mux
// Handler builds, behind the same outer layers as every endpoint.
var testRoutes func(*Server, *http.ServeMux)

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Registry(), promhttp.HandlerOpts{})
}

// Handler returns the HTTP handler of the protocol's endpoints, for the
// public port: its admin endpoints answer as Options.AdminToken and
// AdminTrustLoopback say. It serves GET /metrics too, as vLLM does, so
// that a client given only the server's URL finds its metrics; the
// metrics port (Triton's layout) serves the same registry.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.http.Register(mux)
	s.openai.Register(mux)
	mux.Handle("GET /metrics", s.MetricsHandler())
	s.admin.Register(mux, true)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			httpapi.WriteError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s %s: the endpoint takes %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		httpapi.WriteError(w, http.StatusNotFound, errors.New("no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	if testRoutes != nil {
		testRoutes(s, mux)
	}
	return s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Draining() {
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, r)
	}))
}

// AdminHandler returns the HTTP handler of the admin listener: the admin
// API (repository load and unload, traffic policies, rollouts, fault
// injection), the repository index, liveness and Go's profiles under
// /debug/pprof/. With an admin token set every admin call needs it here
// too; without one the listener's address (loopback by default) is what
// keeps outside callers away.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", httpapi.Live)
	mux.HandleFunc("POST /v2/repository/index", s.http.ServeRepositoryIndex)
	s.admin.Register(mux, false)
	s.admin.RegisterProfiles(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, errors.New("no such admin endpoint: "+r.Method+" "+r.URL.Path))
	})
	return s.guard(mux) // bodies bounded, panics answered and counted, as on the public port
}
