package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/gcfloor"
	"github.com/infer-serving/infer/pkg/netlimit"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/queueapi"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/server"
)

type serveOptions struct {
	path         string
	host         string
	httpPort     int
	grpcPort     int
	metricsPort  int
	maxBodyBytes int64
	// How long to wait on a client: headers, one body, an idle connection.
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	idleTimeout       time.Duration
	defaultTimeout    time.Duration
	gracePeriod       time.Duration
	maxConnections    int
	drainDelay        time.Duration
	adminTokenFile    string
	stateDir          string
	allowFaults       bool
	device            string
	faults            []string
	// isolation is where sessions run (runner.IsolationProcess or None),
	// for models whose config.yaml names none.
	isolation          string
	modelLoadTimeout   time.Duration
	strictModelControl bool
	// Model control: the mode, on-demand's keep-alive, budget and warm
	// models, poll mode's interval.
	modelControlMode string
	keepAlive        time.Duration
	memoryBudget     string
	pollSecs         int
	loadModels       []string
	adminHost        string
	adminPort        int
	adminTrust       bool
	// The queue front end: a broker URL or "embedded", the embedded
	// server's port, and how many requests a model holds at once.
	queueURL         string
	queuePort        int
	queueInflight    int
	queueMaxAttempts int
	// listening, when set, is told the bound addresses once serving
	// (empty for a listener that is off).
	listening func(addrs map[string]string)

	// metricsCompat adds another server's metric families: "triton".
	metricsCompat string
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := serveOptions{}
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve [MODEL.onnx | MODEL_REPOSITORY]",
		Short: "Serve models over the Open Inference Protocol (KServe v2) on HTTP and gRPC, with Prometheus metrics",
		Long: `Serve one .onnx file or a model repository (default: the bundled models) over
the Open Inference Protocol on HTTP and gRPC, Triton's ports and endpoints
included, with the latency budget (queue, preprocess, infer, postprocess, total)
in a Server-Timing header (gRPC: trailing metadata) on every response and
Prometheus metrics on their own port.

On SIGTERM or SIGINT the server turns not-ready, keeps serving for --drain-delay
while load balancers notice, then stops accepting, answers every request it
accepted, and exits within --grace-period: 0 when every one was answered, 1 when
the grace period ran out and cut what was still running.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				if err := o.applyConfig(configFile, cmd.Flags().Changed); err != nil {
					return err
				}
			}
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
	f.StringVar(&configFile, "config", "", "a YAML file of these settings (model_repository, device, host, http_port, grpc_port, metrics_port, metrics_compat, max_body_bytes, default_timeout, drain_delay, read_header_timeout, read_timeout, idle_timeout, max_connections, grace_period, admin_host, admin_port, admin_trust_loopback, admin_token_file, state_dir, isolation, model_load_timeout, strict_model_control, model_control_mode, keep_alive, memory_budget, repository_poll_secs, load_model); flags given override it")
	f.StringVar(&o.path, "model-repository", "", "model repository folder or .onnx file (same as the argument)")
	f.StringVar(&o.device, "device", "", "device of the models whose config.yaml names none: cpu, cuda:N or tensorrt:N (default cpu; a model's fallback_to_cpu still applies)")
	f.StringVar(&o.isolation, "isolation", runner.DefaultIsolation, "where the sessions of models whose config.yaml names none run: process (each instance in a supervised model host, a child process a runtime crash cannot take the server down with) or none (in the server's process)")
	f.DurationVar(&o.modelLoadTimeout, "model-load-timeout", runner.DefaultLoadTimeout, "how long a model host may take to load a model (isolation process), past which the model is UNAVAILABLE; and how long a warm-up may run, past which it stops and the model serves")
	f.BoolVar(&o.strictModelControl, "strict-model-control", false, "exit at start-up when any model fails to load (Triton's --exit-on-error); by default failed models are UNAVAILABLE with their reason and the others serve")
	f.StringVar(&o.modelControlMode, "model-control-mode", string(runner.ControlExplicit), "how loaded models change: none (all at start, no admin load/unload), poll (all at start, then the repository reread every --repository-poll-secs), explicit (all at start, then the admin API), on-demand (each version at its first request, unloaded after --keep-alive idle, within --memory-budget)")
	f.DurationVar(&o.keepAlive, "keep-alive", runner.DefaultKeepAlive, "on-demand: how long an idle version stays loaded, for models whose config.yaml sets no keep_alive (0: as soon as idle; -1s: until evicted)")
	f.StringVar(&o.memoryBudget, "memory-budget", "", "on-demand: bound on the loaded versions' memory, measured per version (8GiB, 512Mi, bytes); loads past it evict the least recently used idle versions, or get 503 with Retry-After")
	f.IntVar(&o.pollSecs, "repository-poll-secs", int(runner.DefaultPollInterval/time.Second), "poll: seconds between rereads of the repository")
	f.StringArrayVar(&o.loadModels, "load-model", nil, "on-demand: a model loaded at start and never unloaded, so it never pays a cold start (repeatable; '*' for every model; as warm: true in its config.yaml)")
	f.StringVar(&o.host, "host", "", "address to listen on (default: every interface)")
	f.IntVar(&o.httpPort, "http-port", 8000, "HTTP port of the protocol (0 turns it off)")
	f.IntVar(&o.grpcPort, "grpc-port", 8001, "gRPC port of the protocol (0 turns it off)")
	f.IntVar(&o.metricsPort, "metrics-port", 8002, "HTTP port of /metrics (0 turns it off)")
	f.StringVar(&o.metricsCompat, "metrics-compat", "", "also export another server's metric families, for the dashboards and alerts written for it: triton (Triton's nv_inference_* counters, labelled model and version)")
	f.Int64Var(&o.maxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body accepted, in bytes (HTTP 413 beyond; also gRPC's largest message)")
	f.DurationVar(&o.readHeaderTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "longest wait for a request's headers (and a gRPC connection's handshake)")
	f.DurationVar(&o.readTimeout, "read-timeout", server.DefaultReadTimeout, "longest wait for one HTTP request's body, from the end of its headers (408 beyond), and for a gRPC call's request message, from its headers (DEADLINE_EXCEEDED beyond)")
	f.DurationVar(&o.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "how long an idle keep-alive HTTP connection, or a gRPC connection with no call open, stays open")
	f.IntVar(&o.maxConnections, "max-connections", server.DefaultMaxConnections, "most connections the HTTP and gRPC ports keep open together; more are closed at accept (lowered to fit the open-file limit, keeping a reserve for the metrics and admin ports, which have limits of their own)")
	f.DurationVar(&o.defaultTimeout, "default-timeout", 0, "deadline of requests that give no timeout parameter, and the most a request waits for an on-demand load (0: none)")
	f.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the bearer token every admin call requires (or $"+adminTokenEnv+"); with one the public HTTP and gRPC ports serve the admin API too, to token holders")
	f.IntVar(&o.adminPort, "admin-port", DefaultAdminPort, "HTTP port of the admin API: repository load and unload, traffic policies, rollouts, fault injection (0 turns it off)")
	f.StringVar(&o.adminHost, "admin-host", "127.0.0.1", "address the admin port listens on (0.0.0.0: every interface); other than loopback it needs an admin token")
	f.BoolVar(&o.adminTrust, "admin-trust-loopback", false, "with no admin token, let loopback callers of the public ports use the admin API (the old rule; unsafe behind a proxy or sidecar on the same host, whose callers arrive from loopback)")
	f.StringVar(&o.stateDir, "state-dir", "", "folder that keeps traffic policies across restarts (default: none, policies live in memory)")
	f.DurationVar(&o.drainDelay, "drain-delay", time.Second, "on shutdown, how long to keep serving while reporting not ready (each response with Connection: close) before closing the ports, so that load balancers and clients move away")
	f.DurationVar(&o.gracePeriod, "grace-period", 30*time.Second, "how long shutdown waits for accepted requests, drain delay included")
	f.StringVar(&o.queueURL, "queue", "", "also take inference requests from a queue: nats://HOST:PORT (JetStream), redis://HOST:PORT[/DB] (Redis Streams), or embedded (a NATS server with JetStream inside infer, its streams under --state-dir); URL parameters ack_wait=30s, duplicates=2m")
	f.IntVar(&o.queuePort, "queue-port", queue.DefaultNATSPort, "client port of the embedded NATS server (--queue embedded)")
	f.IntVar(&o.queueInflight, "queue-max-inflight", queueapi.DefaultMaxInflight, "most queued requests one model holds at once, fetched and unanswered; the rest wait in the broker")
	f.IntVar(&o.queueMaxAttempts, "queue-max-attempts", queueapi.DefaultMaxAttempts, "deliveries of a request the server fails (5xx, full queue) before it goes to the dead-letter stream")
	f.BoolVar(&o.allowFaults, "allow-fault-injection", false, "let --fault and the admin fault endpoint add latency and errors to model versions (for tests and drills; never in production)")
	f.StringArrayVar(&o.faults, "fault", nil, "inject a fault, MODEL:VERSION:latency=50ms,errors=20% (repeatable; needs --allow-fault-injection)")
	return cmd
}

func runServe(ctx context.Context, g *globalOptions, o serveOptions, stderr io.Writer) error {
	ports := []struct {
		name string
		port int
	}{{"--http-port", o.httpPort}, {"--grpc-port", o.grpcPort}, {"--metrics-port", o.metricsPort}, {"--admin-port", o.adminPort}}
	used := map[int]string{}
	for _, p := range ports {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s %d: want 0 (off) to 65535", p.name, p.port)
		}
		if other, dup := used[p.port]; dup && p.port != 0 {
			return fmt.Errorf("%s and %s are both %d", other, p.name, p.port)
		}
		used[p.port] = p.name
	}
	if o.maxBodyBytes <= 0 {
		o.maxBodyBytes = server.DefaultMaxBodyBytes
	}
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{"--read-header-timeout", o.readHeaderTimeout}, {"--read-timeout", o.readTimeout}, {"--idle-timeout", o.idleTimeout}} {
		if t.d < 0 {
			return fmt.Errorf("%s %v: want a positive duration (0: the default)", t.flag, t.d)
		}
	}
	if o.adminHost == "" {
		o.adminHost = "127.0.0.1" // every interface is 0.0.0.0, said outright
	}
	if o.maxConnections < 0 {
		return fmt.Errorf("--max-connections %d: want a positive number (0: the default, %d)", o.maxConnections, server.DefaultMaxConnections)
	}
	if o.drainDelay < 0 || o.gracePeriod < 0 {
		return fmt.Errorf("--drain-delay %v, --grace-period %v: want durations of 0 or more", o.drainDelay, o.gracePeriod)
	}
	if o.httpPort == 0 && o.grpcPort == 0 && o.queueURL == "" {
		return errors.New("--http-port and --grpc-port are both 0, and no --queue: nothing to serve")
	}
	compat, err := core.ParseMetricsCompat(o.metricsCompat)
	if err != nil {
		return fmt.Errorf("--metrics-compat: %w", err)
	}
	if len(o.faults) > 0 && !o.allowFaults {
		return errors.New("--fault injects failures: add --allow-fault-injection to mean it")
	}
	type fault struct {
		model   string
		version int64
		f       server.Fault
	}
	var faults []fault
	for _, spec := range o.faults {
		model, version, f, err := parseFault(spec)
		if err != nil {
			return err
		}
		faults = append(faults, fault{model, version, f})
	}
	ctl, err := o.control()
	if err != nil {
		return err
	}
	ro := repoOptions{device: o.device, isolation: o.isolation,
		loadTimeout: o.modelLoadTimeout, stateDir: o.stateDir, strict: o.strictModelControl, allowNone: !o.strictModelControl || ctl.Mode == runner.ControlOnDemand,
		control: ctl}
	if err := ro.check(); err != nil { // a wrong flag is named before any port is looked at
		return err
	}
	if err := portsFree(o.listeners()); err != nil {
		return err
	}
	defer gcfloor.Hold(gcfloor.DefaultFloor)() // the live heap is small: see gcfloor
	repo, err := openInterruptibly(ctx, func() (*runner.Repository, error) {
		return openRepositoryWith(g, o.path, ro, stderr)
	})
	if errors.Is(err, runner.ErrModelNotFound) && len(o.loadModels) > 0 {
		return fmt.Errorf("--load-model: %w", err)
	}
	if err != nil {
		return err
	}
	defer repo.Close()
	token, err := o.adminToken()
	if err != nil {
		return err
	}
	if err := o.checkAdmin(token); err != nil {
		return err
	}
	srv, err := server.New(repo, server.Options{Version: version, MaxBodyBytes: o.maxBodyBytes, DefaultTimeout: o.defaultTimeout,
		ReadHeaderTimeout: o.readHeaderTimeout, ReadTimeout: o.readTimeout, IdleTimeout: o.idleTimeout,
		MaxConnections: o.maxConnections, DrainDelay: o.drainDelay, GracePeriod: o.gracePeriod,
		AdminToken: token, AdminTrustLoopback: o.adminTrust, StateDir: o.stateDir, AllowFaultInjection: o.allowFaults,
		MetricsCompat: compat})
	if err != nil {
		return fmt.Errorf("--state-dir %s: %w", o.stateDir, err)
	}
	for _, f := range faults {
		// On demand, a version not loaded yet takes its fault when it loads.
		if _, err := repo.Model(f.model, f.version); err != nil && !(ctl.Mode == runner.ControlOnDemand && errors.Is(err, runner.ErrModelNotReady)) {
			return fmt.Errorf("--fault %s:%d: %w", f.model, f.version, err)
		}
		if err := srv.SetFault(f.model, f.version, &f.f); err != nil {
			return fmt.Errorf("--fault: %w", err)
		}
	}

	// Every port is bound before anything is served, so that a port in use
	// stops the start with nothing half up.
	var ls server.Listeners
	var opened []net.Listener
	addrs := map[string]string{}
	to := map[string]*net.Listener{"HTTP": &ls.HTTP, "gRPC": &ls.GRPC, "metrics": &ls.Metrics, "admin": &ls.Admin}
	for _, l := range o.listeners() {
		if l.port == 0 {
			continue
		}
		ln, err := netlimit.ListenTCP(ctx, l.addr())
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("%s listener: %w", l.name, err)
		}
		opened = append(opened, ln)
		*to[l.name] = ln
		addrs[l.name] = ln.Addr().String()
	}
	broker, stopBroker, err := o.openQueue(ctx, addrs)
	if err != nil {
		for _, o := range opened {
			o.Close()
		}
		return err
	}
	defer stopBroker()
	announce(slog.Default(), repo, addrs)
	if o.listening != nil {
		o.listening(addrs)
	}
	queueDone := make(chan error, 1)
	if broker != nil {
		go func() {
			queueDone <- srv.ServeQueue(ctx, broker, queueapi.Options{MaxInflight: o.queueInflight, MaxAttempts: o.queueMaxAttempts, GracePeriod: o.gracePeriod})
		}()
	} else {
		queueDone <- nil
	}
	// The grace period bounds the whole shutdown, the models' own close
	// (batches still running in their hosts) included.
	var shutdownAt atomic.Int64
	context.AfterFunc(ctx, func() { shutdownAt.Store(time.Now().UnixNano()) })
	err = srv.Serve(ctx, ls)
	err = errors.Join(err, <-queueDone)
	srv.Close()
	left := o.gracePeriod
	if at := shutdownAt.Load(); at != 0 {
		left -= time.Since(time.Unix(0, at))
	}
	repo.CloseWithin(left)
	if err != nil {
		slog.Error("stopped", "err", err)
	} else {
		slog.Info("stopped")
	}
	return err
}

// openQueue connects to the queue broker --queue names, starting the
// embedded one first for "embedded" (its address joins addrs as NATS). It
// returns nil with no --queue; stop closes what it opened.
func (o serveOptions) openQueue(ctx context.Context, addrs map[string]string) (queue.Broker, func(), error) {
	if o.queueURL == "" {
		return nil, func() {}, nil
	}
	if o.queueInflight < 1 || o.queueMaxAttempts < 1 {
		return nil, nil, fmt.Errorf("--queue-max-inflight %d, --queue-max-attempts %d: want 1 or more", o.queueInflight, o.queueMaxAttempts)
	}
	url, stopEmbedded := o.queueURL, func() {}
	if url == "embedded" {
		if o.queuePort < 0 || o.queuePort > 65535 {
			return nil, nil, fmt.Errorf("--queue-port %d: want 0 (4222) to 65535", o.queuePort)
		}
		e, err := queue.StartEmbedded(queue.EmbeddedOptions{Host: o.host, Port: o.queuePort, StateDir: o.stateDir})
		if err != nil {
			return nil, nil, fmt.Errorf("--queue embedded: %w", err)
		}
		if o.stateDir == "" {
			slog.Warn("--queue embedded without --state-dir keeps its streams in memory: queued requests are lost at exit")
		}
		url, stopEmbedded = e.URL(), e.Shutdown
		addrs["NATS"] = e.Addr()
	}
	host, _ := os.Hostname()
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := queue.Open(setup, url, fmt.Sprintf("%s-%d", host, os.Getpid()))
	if err != nil {
		stopEmbedded()
		return nil, nil, fmt.Errorf("--queue: %w", err)
	}
	return b, func() { b.Close(); stopEmbedded() }, nil
}

// control reads the model control flags, refusing those that do nothing
// in the mode chosen.
func (o serveOptions) control() (runner.Control, error) {
	mode, err := runner.ParseControlMode(o.modelControlMode)
	if err != nil {
		return runner.Control{}, fmt.Errorf("--model-control-mode: %w", err)
	}
	c := runner.Control{Mode: mode, KeepAlive: o.keepAlive, PollInterval: time.Duration(o.pollSecs) * time.Second, Warm: o.loadModels,
		LoadWait: o.defaultTimeout}
	if o.memoryBudget != "" {
		b, err := runner.ParseByteSize(o.memoryBudget)
		if err != nil || b == 0 {
			return runner.Control{}, fmt.Errorf("--memory-budget %q: want a size such as 8GiB or 512Mi", o.memoryBudget)
		}
		c.MemoryBudget = int64(b)
	}
	if o.pollSecs < 0 {
		return runner.Control{}, fmt.Errorf("--repository-poll-secs %d: want 1 or more (0: the default, %d)", o.pollSecs, int(runner.DefaultPollInterval/time.Second))
	}
	if mode != runner.ControlOnDemand && (c.MemoryBudget != 0 || len(o.loadModels) > 0) {
		return runner.Control{}, fmt.Errorf("--memory-budget and --load-model apply to --model-control-mode on-demand (the other modes load every model at start)")
	}
	if o.keepAlive == 0 {
		c.KeepAlive = time.Nanosecond // unloaded as soon as idle (Ollama's 0), not the default
	}
	return c, nil
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

// DefaultAdminPort is the admin API's port, next to Triton's three.
const DefaultAdminPort = 8003

// checkAdmin refuses an admin API open to the network: an admin port on
// an address other than loopback with no token to guard it.
func (o serveOptions) checkAdmin(token string) error {
	if o.adminPort == 0 || token != "" {
		return nil
	}
	host := o.adminHost
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--admin-host %q without an admin token would let anyone who reaches it load, unload and move traffic: give --admin-token-file (or $%s), or keep the admin port on 127.0.0.1", host, adminTokenEnv)
}

// adminTokenEnv holds the admin token when no file does.
const adminTokenEnv = "INFER_ADMIN_TOKEN"

// adminToken reads the admin endpoints' bearer token: from
// --admin-token-file, else $INFER_ADMIN_TOKEN, else none.
func (o serveOptions) adminToken() (string, error) {
	if o.adminTokenFile != "" {
		data, err := os.ReadFile(o.adminTokenFile)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		token := strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("--admin-token-file %s is empty", o.adminTokenFile)
		}
		return token, nil
	}
	return strings.TrimSpace(os.Getenv(adminTokenEnv)), nil
}

// parseFault reads --fault MODEL:VERSION:latency=50ms,errors=20%.
func parseFault(spec string) (string, int64, server.Fault, error) {
	bad := func(why string) (string, int64, server.Fault, error) {
		return "", 0, server.Fault{}, fmt.Errorf("--fault %q: %s (want MODEL:VERSION:latency=50ms,errors=20%%)", spec, why)
	}
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 || parts[0] == "" {
		return bad("three parts separated by colons")
	}
	version, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || version < 1 {
		return bad(fmt.Sprintf("version %q is not a positive integer", parts[1]))
	}
	var f server.Fault
	for kv := range strings.SplitSeq(parts[2], ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "latency":
			if f.Latency, err = time.ParseDuration(v); err != nil || f.Latency < 0 {
				return bad(fmt.Sprintf("latency %q is not a duration such as 50ms", v))
			}
		case "errors":
			p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || !strings.HasSuffix(v, "%") || p < 0 || p > 100 {
				return bad(fmt.Sprintf("errors %q is not a percentage such as 20%%", v))
			}
			f.ErrorRate = p / 100
		default:
			return bad(fmt.Sprintf("unknown setting %q", k))
		}
	}
	return parts[0], version, f, nil
}

// listener is one of serve's ports: its name, the flag that sets it, and
// its address (port 0: off).
type listener struct {
	name, flag, host string
	port             int
}

func (l listener) addr() string { return net.JoinHostPort(l.host, strconv.Itoa(l.port)) }

func (o serveOptions) listeners() []listener {
	return []listener{{"HTTP", "--http-port", o.host, o.httpPort}, {"gRPC", "--grpc-port", o.host, o.grpcPort},
		{"metrics", "--metrics-port", o.host, o.metricsPort}, {"admin", "--admin-port", o.adminHost, o.adminPort}}
}

// portsFree binds and releases each port before the models load, so that
// a port in use stops the start at once, not after a load that may take
// minutes. The ports are bound for good once the models are loaded.
func portsFree(ls []listener) error {
	for _, l := range ls {
		if l.port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", l.addr())
		if err != nil {
			return fmt.Errorf("%s %d: %w (another server there? choose another port, or 0 to turn the %s port off)", l.flag, l.port, err, l.name)
		}
		ln.Close()
	}
	return nil
}

// abandonedLoads holds the loads openInterruptibly stopped waiting for,
// until they end and close what they opened: the process's exit, or a
// test that waits for them.
var abandonedLoads sync.WaitGroup

// openInterruptibly opens the model repository with open, which loads its
// models one after another and may take minutes, and returns at once when
// ctx ends first (SIGTERM or SIGINT during start-up), with an error that
// says so: the loads go on in their goroutine, which closes what they
// opened once they end, and a process that exits ends its model hosts with
// it (their parent-death signal).
func openInterruptibly(ctx context.Context, open func() (*runner.Repository, error)) (*runner.Repository, error) {
	type opened struct {
		repo *runner.Repository
		err  error
	}
	done := make(chan opened, 1)
	go func() {
		repo, err := open()
		done <- opened{repo, err}
	}()
	select {
	case o := <-done:
		return o.repo, o.err
	case <-ctx.Done():
		abandonedLoads.Go(func() {
			if o := <-done; o.repo != nil {
				o.repo.Close()
			}
		})
		return nil, fmt.Errorf("interrupted while loading the model repository (%v): not serving", context.Cause(ctx))
	}
}
