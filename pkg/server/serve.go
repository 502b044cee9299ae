package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"

	"github.com/infer-serving/infer/pkg/grpcapi"
	"github.com/infer-serving/infer/pkg/netlimit"
)

// Listeners are the sockets a Server serves; a nil one is off.
type Listeners struct {
	// HTTP and GRPC are the inference ports; they share one connection
	// budget (Options.MaxConnections).
	HTTP, GRPC net.Listener
	// Metrics and Admin have budgets of their own, so that they answer
	// whatever the inference ports are sent.
	Metrics, Admin net.Listener
}

// Connection bounds. Go's net/http and grpc-go bound nothing; Envoy as an
// edge proxy caps a listener's connections and keeps its admin port
// apart, nginx allows 512 to 1,024 per worker and HAProxy derives its
// maxconn from the descriptor limit. A connection costs the server a
// descriptor, a goroutine and its buffers (about 20 KiB idle over
// HTTP/1.1; 4,096 hold about 80 MiB), and a model server sits behind a
// few load balancers or proxies rather than thousands of clients. Under
// scripts/hostile.sh's 10,000 idle connections the default keeps the
// normal client's p99 at its unloaded figure (4.9 ms against 4.9 ms,
// where 10,000 allowed gave 6.1 ms against 2.5 ms).
const (
	// DefaultMaxConnections bounds the inference ports' open connections
	// (HTTP and gRPC together).
	DefaultMaxConnections = 4096
	// metricsConnections and adminConnections bound the metrics and admin
	// ports' connections: a scraper or an operator needs a few.
	metricsConnections = 128
	adminConnections   = 64
	// fdReserve is kept out of the inference ports' budget when the
	// descriptor limit is lower than it asks: the metrics and admin
	// ports' budgets, model hosts' sockets and memory files, model files,
	// logs.
	fdReserve = metricsConnections + adminConnections + 832
)

// maxConnections returns the inference ports' connection bound: want,
// lowered to fit the process's descriptor limit less fdReserve. The second
// result is the descriptor limit when it lowered want, else 0.
func maxConnections(want int) (int, uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= math.MaxInt64 {
		return want, 0
	}
	if room := int64(lim.Cur) - fdReserve; int64(want) > room {
		return int(max(room, 64)), lim.Cur
	}
	return want, 0
}

// drainPoll is how often a shutdown looks for idle connections to close.
const drainPoll = 5 * time.Millisecond

// Serve serves the listeners until ctx ends, then shuts down the
// Kubernetes way: it reports itself not ready and keeps serving for
// Options.DrainDelay (every response with "Connection: close", so that
// clients move away while load balancers notice), then stops new
// handshakes, accepts the connections the kernel has queued, closes the
// listeners, answers every request already written to an accepted
// connection, and returns within Options.GracePeriod of ctx's end. It
// returns the first listener's failure (after shutting down the others)
// or, past the grace period, which front ends were cut.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	inference := netlimit.NewBudget(s.opts.MaxConnections)
	budgets := map[string]*netlimit.Budget{"inference": inference,
		"metrics": netlimit.NewBudget(metricsConnections), "admin": netlimit.NewBudget(adminConnections)}
	s.Registry().MustRegister(connCollector(budgets), receivingCollector{s.receiving, s.messages})

	var fronts []front
	if ls.HTTP != nil {
		fronts = append(fronts, front{name: "HTTP", ln: netlimit.Listen(ls.HTTP, inference), fast: s.HTTPFront()})
	}
	for _, f := range []struct {
		name   string
		ln     net.Listener
		h      http.Handler
		budget string
	}{{"metrics", ls.Metrics, s.MetricsHandler(), "metrics"}, {"admin", ls.Admin, s.AdminHandler(), "admin"}} {
		if f.ln != nil {
			hs := s.HTTPServer(f.h)
			hs.ConnState = netlimit.ConnState
			fronts = append(fronts, front{name: f.name, ln: netlimit.Listen(f.ln, budgets[f.budget]), http: hs})
		}
	}
	if ls.GRPC != nil {
		gs := grpc.NewServer(s.GRPCServerOptions()...)
		s.RegisterGRPC(gs)
		fronts = append(fronts, front{name: "gRPC", ln: netlimit.Listen(ls.GRPC, inference), grpc: gs})
	}

	var stopping atomic.Bool
	errc := make(chan error, len(fronts))
	var serving sync.WaitGroup
	for _, f := range fronts {
		serving.Go(func() {
			err := f.serve()
			if err != nil && !stopping.Load() && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("%s server: %w", f.name, err)
			}
		})
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	s.log.Info("shutting down", "drain_delay", s.opts.DrainDelay, "grace_period", s.opts.GracePeriod)
	grace, cancel := context.WithTimeout(context.Background(), s.opts.GracePeriod)
	defer cancel()
	s.Drain()
	if serveErr == nil {
		select {
		case <-time.After(s.opts.DrainDelay):
		case <-grace.Done():
		case <-s.drained: // tests end the delay when they have seen it
		}
	}
	stopping.Store(true)
	var mu sync.Mutex
	var stops sync.WaitGroup
	for _, f := range fronts {
		stops.Go(func() {
			if err := f.stop(grace, s.log); err != nil {
				mu.Lock()
				serveErr = errors.Join(serveErr, fmt.Errorf("%s server: shutdown within %v: %w", f.name, s.opts.GracePeriod, err))
				mu.Unlock()
			}
		})
	}
	stops.Wait()
	serving.Wait()
	return serveErr
}

// front is one listener and the server that serves it: net/http (the
// metrics and admin ports), fasthttp (the HTTP inference port) or gRPC.
type front struct {
	name string
	ln   *netlimit.Listener
	http *http.Server
	fast *fasthttp.Server
	grpc *grpc.Server
}

func (f front) serve() error {
	switch {
	case f.http != nil:
		return f.http.Serve(f.ln)
	case f.fast != nil:
		return f.fast.Serve(f.ln)
	}
	return f.grpc.Serve(f.ln)
}

// stop stops the front end: no new connection, every request written to
// an accepted one answered, then closed; by ctx's end at the latest.
func (f front) stop(ctx context.Context, log *slog.Logger) error {
	ln := f.ln
	// Closing a listener resets the connections the kernel has queued for
	// it, whose clients may have written a request: take them first.
	if queued, err := ln.Quiesce(drainPoll, ctx.Done()); err != nil {
		log.Warn("closing the listener may reset connections queued for it", "addr", ln.Addr().String(), "err", err)
	} else if queued > 0 {
		log.Warn("connections queued for the listener reset at close", "addr", ln.Addr().String(), "connections", queued)
	}
	if f.grpc != nil {
		// GracefulStop closes the listener, sends GOAWAY and waits for
		// the calls open: HTTP/2 closes connections gracefully.
		done := make(chan struct{})
		go func() { f.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			// At once: closing the connections first ends any lingering
			// close (netlimit.Conn) that Stop, closing them one by one,
			// would wait on.
			ln.CloseAll()
			f.grpc.Stop()
			<-done
			return ctx.Err()
		}
	}
	_ = ln.Close()
	// Close idle connections only where no request is on its way; a
	// server's own shutdown would close some that are (netlimit.Drain
	// says which), so it runs once they are all gone, to end Serve.
	if left := ln.Drain(drainPoll, ctx.Done()); left > 0 {
		ln.CloseAll()
		if f.http != nil {
			_ = f.http.Close()
		}
		return fmt.Errorf("%d connections still open: %w", left, ctx.Err())
	}
	if f.http == nil {
		return nil // fasthttp's Serve ended with its listener, and no connection is left
	}
	// Shutdown closes the listener again: that it was closed is no error.
	if err := f.http.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// connCollector reports each budget's open connections and the
// connections refused for want of room, by listener.
type connCollector map[string]*netlimit.Budget

var (
	connOpenDesc = prometheus.NewDesc("infer_connections_open",
		"Connections open now, by listener (inference: the HTTP and gRPC ports together; metrics; admin).", []string{"listener"}, nil)
	connLimitDesc = prometheus.NewDesc("infer_connections_max",
		"The most connections a listener keeps open (--max-connections for inference); more are closed at accept.", []string{"listener"}, nil)
	connRejectedDesc = prometheus.NewDesc("infer_connections_rejected_total",
		"Connections closed at accept because the listener's limit was reached and no idle connection could make room, by listener.", []string{"listener"}, nil)
	connEvictedDesc = prometheus.NewDesc("infer_connections_evicted_total",
		"Idle keep-alive connections closed to make room for a new one at the listener's limit, by listener.", []string{"listener"}, nil)
)

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connOpenDesc
	ch <- connLimitDesc
	ch <- connRejectedDesc
	ch <- connEvictedDesc
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	for name, b := range c {
		ch <- prometheus.MustNewConstMetric(connOpenDesc, prometheus.GaugeValue, float64(b.Open()), name)
		ch <- prometheus.MustNewConstMetric(connLimitDesc, prometheus.GaugeValue, float64(b.Limit()), name)
		ch <- prometheus.MustNewConstMetric(connRejectedDesc, prometheus.CounterValue, float64(b.Rejected()), name)
		ch <- prometheus.MustNewConstMetric(connEvictedDesc, prometheus.CounterValue, float64(b.Evicted()), name)
	}
}

// receivingCollector reports the gRPC port's receive budget
// (grpcapi.ReceiveBudget) and its bound on a call's wait for its message
// (grpcapi.MessageWait).
type receivingCollector struct {
	b *grpcapi.ReceiveBudget
	w *grpcapi.MessageWait
}

var (
	receivingDesc = prometheus.NewDesc("infer_grpc_receiving_bytes",
		"Bytes of gRPC calls held, requests arriving or waiting for their answer, over every connection, as the receive budget charges them.", nil, nil)
	receivingMaxDesc = prometheus.NewDesc("infer_grpc_receiving_max_bytes",
		"The receive budget: past it stalled connections are closed and calls past their connection's share refused.", nil, nil)
	receivingClosedDesc = prometheus.NewDesc("infer_grpc_connections_closed_total",
		"gRPC connections closed by the receive budget past its bound: stalled ones, or the largest holder.", nil, nil)
	messageExpiredDesc = prometheus.NewDesc("infer_grpc_message_timeouts_total",
		"gRPC calls ended with DEADLINE_EXCEEDED because their request message did not arrive within --read-timeout of their headers.", nil, nil)
)

func (c receivingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- receivingDesc
	ch <- receivingMaxDesc
	ch <- receivingClosedDesc
	ch <- messageExpiredDesc
}

func (c receivingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(receivingDesc, prometheus.GaugeValue, float64(c.b.Held()))
	ch <- prometheus.MustNewConstMetric(receivingMaxDesc, prometheus.GaugeValue, float64(c.b.Max()))
	ch <- prometheus.MustNewConstMetric(receivingClosedDesc, prometheus.CounterValue, float64(c.b.Closed()))
	ch <- prometheus.MustNewConstMetric(messageExpiredDesc, prometheus.CounterValue, float64(c.w.Expired()))
}
