package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/server"
)

type serveOptions struct {
	path           string
	host           string
	httpPort       int
	metricsPort    int
	maxBodyBytes   int64
	defaultTimeout time.Duration
	gracePeriod    time.Duration
	drainDelay     time.Duration
	// listening, when set, is told the bound addresses once serving
	// (empty for a listener that is off).
	listening func(httpAddr, metricsAddr string)
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve [MODEL.onnx | MODEL_REPOSITORY]",
		Short: "Serve models over the Open Inference Protocol (KServe v2) on HTTP, with Prometheus metrics",
		Long: `Serve one .onnx file or a model repository (default: the bundled models) over
the Open Inference Protocol on HTTP, Triton's ports and endpoints included, with
the latency budget (queue, preprocess, infer, postprocess, total) in a
Server-Timing header on every response and Prometheus metrics on their own port.

On SIGTERM or SIGINT the server turns not-ready, refuses new inference requests
with 503, answers every request it accepted, and exits 0 within --grace-period.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.path != "" && o.path != args[0] {
					return fmt.Errorf("model path given twice: %q and --model-repository %q", args[0], o.path)
				}
				o.path = args[0]
			}
			return runServe(cmd.Context(), g, o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.path, "model-repository", "", "model repository folder or .onnx file (same as the argument)")
	f.StringVar(&o.host, "host", "", "address to listen on (default: every interface)")
	f.IntVar(&o.httpPort, "http-port", 8000, "HTTP port of the protocol (0 turns it off)")
	f.IntVar(&o.metricsPort, "metrics-port", 8002, "HTTP port of /metrics (0 turns it off)")
	f.Int64Var(&o.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body accepted (413 beyond)")
	f.DurationVar(&o.defaultTimeout, "default-timeout", 0, "deadline of requests that give no timeout parameter (0: none)")
	f.DurationVar(&o.drainDelay, "drain-delay", time.Second, "on shutdown, how long to keep answering (503, Connection: close) before closing the ports, so clients and load balancers move away")
	f.DurationVar(&o.gracePeriod, "grace-period", 30*time.Second, "how long shutdown waits for accepted requests, drain delay included")
	return cmd
}

func runServe(ctx context.Context, g *globalOptions, o serveOptions, stderr io.Writer) error {
	for _, p := range []struct {
		name string
		port int
	}{{"--http-port", o.httpPort}, {"--metrics-port", o.metricsPort}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s %d: want 0 (off) to 65535", p.name, p.port)
		}
	}
	if o.httpPort == 0 && o.metricsPort == 0 {
		return errors.New("--http-port and --metrics-port are both 0: nothing to serve")
	}
	if o.httpPort != 0 && o.httpPort == o.metricsPort {
		return fmt.Errorf("--http-port and --metrics-port are both %d", o.httpPort)
	}
	repo, err := openRepository(g, o.path, stderr)
	if err != nil {
		return err
	}
	defer repo.Close()
	srv := server.New(repo, server.Options{Version: version, MaxBodyBytes: o.maxBodyBytes, DefaultTimeout: o.defaultTimeout})

	type listener struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}
	var listeners []listener
	open := func(name string, port int, h http.Handler) error {
		if port == 0 {
			return nil
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("%s listener: %w", name, err)
		}
		listeners = append(listeners, listener{name, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln})
		return nil
	}
	if err := open("HTTP", o.httpPort, srv.Handler()); err != nil {
		return err
	}
	if err := open("metrics", o.metricsPort, srv.MetricsHandler()); err != nil {
		for _, l := range listeners {
			l.ln.Close()
		}
		return err
	}

	errc := make(chan error, len(listeners))
	addrs := map[string]string{}
	for _, l := range listeners {
		addrs[l.name] = l.ln.Addr().String()
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s server: %w", l.name, err)
			}
		}()
	}
	n := 0
	for _, st := range repo.Index() {
		if st.State == "READY" {
			n++
		}
	}
	fmt.Fprintf(stderr, "infer: serving %d model versions; HTTP %s, metrics %s\n", n, orOff(addrs["HTTP"]), orOff(addrs["metrics"]))
	if o.listening != nil {
		o.listening(addrs["HTTP"], addrs["metrics"])
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	// Drain: not ready, refuse new work with 503 and Connection: close,
	// answer what was accepted; after the drain delay, close the ports and
	// wait for the requests still running.
	slog.Info("shutting down", "drain_delay", o.drainDelay, "grace_period", o.gracePeriod)
	shutdown, cancel := context.WithTimeout(context.Background(), o.gracePeriod)
	defer cancel()
	srv.Drain()
	select {
	case <-time.After(min(o.drainDelay, o.gracePeriod)):
	case <-shutdown.Done():
	}
	for _, l := range listeners {
		if err := l.srv.Shutdown(shutdown); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("%s server: shutdown within %v: %w", l.name, o.gracePeriod, err))
		}
	}
	return serveErr
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}
