package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/infer-serving/infer/pkg/gcfloor"
	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/tui"
)

type benchOptions struct {
	url, protocol, model, version string
	// queue is the broker of --protocol nats|redis.
	queue                       string
	models                      []string
	zipf                        float64
	qps                         float64
	qpsSpec                     string
	findMax                     bool
	maxQPS                      float64
	schedule                    string
	qpsTo                       float64
	rampOver, stepEvery, period time.Duration
	step, amplitude             float64
	concurrency                 int
	duration, warmup, timeout   time.Duration
	requests                    uint64
	shapes                      []string
	rows                        int64
	textFile, inputData         string
	cold                        bool
	method, body, targets       string
	headers                     []string
	out                         *outputFlag
	slo, csvFile, html          string
	seed                        uint64
	tui                         bool
	pricePerHour                float64
	retries                     int
	retryBudget                 string
	// Text generation (--protocol openai).
	chat                      bool
	promptsFile               string
	inputTokens, outputTokens string
	sharedPrefix              int
	temperature               float64
	// settings are every flag's value, given or defaulted, by name: the
	// report records them.
	settings map[string]string
}

// errSLO marks a run that missed its objectives: the exit code says so.
var errSLO = errors.New("service-level objectives missed")

func newBenchCmd(_ *globalOptions) *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench [URL | --server URL]",
		Short: "Load-test an inference server, open or closed loop, with the latency budget split by phase",
		Long: `Load-test an Open Inference Protocol server (infer serve, Triton, KServe,
MLServer) over HTTP or gRPC, or any plain HTTP endpoint.

Open loop (--qps) sends on an absolute schedule and measures each latency
from the request's intended send time, so a stalled server shows as the wait
its users see (coordinated omission corrected; the uncorrected service time
is reported too). Closed loop (--concurrency without --qps) keeps that many
requests in flight. Latencies go into HdrHistograms; each request's time is
split into delay, connect, write, the server's queue, preprocess, infer and
postprocess (from Server-Timing or gRPC trailers), and network.

The server is URL (or --server URL), by default a local infer serve:
http://localhost:8000, or localhost:8001 with --protocol grpc. The model
defaults to the only one served; inputs are generated from its metadata.`,
		Example: `  infer bench -m mlp --qps 500 -d 30s
  infer bench --server http://localhost:8000 -m text-encoder -c 16 --requests 10000
  infer bench localhost:8001 --protocol grpc --qps 1000 --schedule poisson --slo 'p99<20ms'
  infer bench http://localhost:8080/healthz --protocol http --qps 2000`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if o.url != "" && o.url != args[0] {
					return fmt.Errorf("the server is given twice, as %q and --server %q: give one", args[0], o.url)
				}
				o.url = args[0]
			}
			o.settings = map[string]string{}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name != "help" && f.Deprecated == "" {
					o.settings[f.Name] = f.Value.String()
				}
			})
			err := runBench(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if errors.Is(err, errSLO) {
				cmd.SilenceErrors = true
			}
			return err
		},
	}
	cmd.AddCommand(newBenchCompareCmd())
	f := cmd.Flags()
	f.StringVar(&o.url, "server", "", "the server's URL, the same as the URL argument (default: http://localhost:8000, or localhost:8001 with --protocol grpc)")
	f.StringVar(&o.protocol, "protocol", loadgen.ProtoHTTPBinary, "http-binary, http-json, grpc (the Open Inference Protocol), nats or redis (the same requests through infer serve --queue: --queue names the broker, the URL the HTTP server the model's metadata comes from), openai (streamed text generation) or http (a plain endpoint)")
	f.StringVar(&o.queue, "queue", "", "the broker of --protocol nats or redis: nats://HOST:4222 (default for nats) or redis://HOST:6379 (default for redis)")
	f.BoolVar(&o.chat, "chat", false, "openai: send chat completions instead of completions")
	f.StringVar(&o.promptsFile, "prompts", "", "openai: prompts, one a line (default: synthetic, see --input-tokens)")
	f.StringVar(&o.inputTokens, "input-tokens", "64:256", "openai: synthetic prompt lengths in words (about tokens), N or MIN:MAX")
	f.StringVar(&o.outputTokens, "output-tokens", "16:128", "openai: max_tokens of each request, N or MIN:MAX")
	f.IntVar(&o.sharedPrefix, "shared-prefix-tokens", 0, "openai: words every synthetic prompt shares at its start, to measure prefix caching (default: none, every prompt unique from its first word)")
	f.Float64Var(&o.temperature, "temperature", 0, "openai: sampling temperature (0: greedy)")
	f.StringVarP(&o.model, "model", "m", "", "model name (default: the only model served)")
	f.StringVar(&o.version, "model-version", "", "model version (default: the server's choice)")
	f.StringSliceVar(&o.models, "models", nil, "several models, names or globs of the server's such as 'm0*' (comma-separated, in order of popularity): each request goes to one, drawn by Zipf's law (see --zipf), and the report gives each its figures")
	f.Float64Var(&o.zipf, "zipf", 1, "--models: the Zipf exponent s; model k (from 1) is asked for in proportion to 1/k^s (0: uniform)")
	f.StringVar(&o.qpsSpec, "qps", "", "open loop: requests per second (the schedule's start rate), or a sweep start:stop:step, one run per rate")
	f.BoolVar(&o.findMax, "find-max", false, "search for the highest rate that meets --slo (and achieves 99% of target), from --qps (default 100)")
	f.Float64Var(&o.maxQPS, "max-qps", 0, "--find-max: the highest rate to try (0: no limit)")
	f.StringVar(&o.schedule, "schedule", "constant", "open-loop schedule: constant, poisson, ramp, step or sine")
	f.Float64Var(&o.qpsTo, "qps-to", 0, "ramp: the final rate; step: the highest rate (0: no limit)")
	f.DurationVar(&o.rampOver, "ramp-over", 0, "ramp: how long the rate takes to reach --qps-to (default: --duration)")
	f.Float64Var(&o.step, "step", 0, "step: the rate added every --step-every")
	f.DurationVar(&o.stepEvery, "step-every", 10*time.Second, "step: how long each rate holds")
	f.Float64Var(&o.amplitude, "amplitude", 0, "sine: how far the rate swings around --qps")
	f.DurationVar(&o.period, "period", time.Minute, "sine: the period of the swing")
	f.IntVarP(&o.concurrency, "concurrency", "c", 0, "closed loop: requests in flight (default 1); open loop: the most in flight (default 4096)")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "how long to measure, after the warm-up")
	f.Uint64Var(&o.requests, "requests", 0, "stop after this many measured requests (0: no limit)")
	f.DurationVar(&o.warmup, "warmup", 0, "load the server this long before measuring")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	f.StringArrayVar(&o.shapes, "shape", nil, "full shape of an input with dynamic dimensions, name:d1,d2,... (repeatable)")
	f.Int64Var(&o.rows, "batch-size", 1, "rows per request along a dynamic first dimension")
	f.StringVar(&o.textFile, "text-file", "", "strings for BYTES inputs, one per line")
	f.StringVar(&o.inputData, "input-data", "", "a perf_analyzer-style JSON file of the requests to send, instead of generated inputs")
	f.BoolVar(&o.cold, "cold", false, "open a new connection for every request (HTTP), to show connection set-up")
	f.StringVar(&o.method, "method", "GET", "plain http: the request method")
	f.StringArrayVar(&o.headers, "header", nil, "plain http: a request header, 'Name: value' (repeatable)")
	f.StringVar(&o.body, "body", "", "plain http: the request body, or @file")
	f.StringVar(&o.targets, "targets", "", "plain http: a file of requests to send in turn (METHOD URL, headers, @body-file; blank-line separated)")
	o.out = addOutputFlag(cmd, false, "the report; json and yaml hold every figure and the run's settings", formatText, formatJSON, formatYAML)
	f.StringVar(&o.slo, "slo", "", "objectives such as 'p99<50ms,errors<1%': exit 1 when missed")
	f.StringVar(&o.csvFile, "csv", "", "also write the figures as CSV to this file, one row per run or sweep step")
	f.StringVar(&o.html, "html", "", "also write a self-contained HTML report (latency over time, percentile distribution) to this file")
	f.Uint64Var(&o.seed, "seed", 1, "seed of generated inputs and Poisson arrivals")
	f.IntVar(&o.retries, "retries", 0, "retry a request refused, reset, shed (429) or unavailable (502, 503) up to this many times, with jittered exponential back-off within --timeout")
	f.StringVar(&o.retryBudget, "retry-budget", "10%", "retries allowed per request sent, so a failing server is not hit by a retry storm")
	f.BoolVar(&o.tui, "tui", false, "watch the run on a live dashboard (plain snapshots when not on a terminal); q stops it early and reports")
	f.Float64Var(&o.pricePerHour, "price-per-hour", 0, "US dollars an hour the server costs: reports the cost per 1,000 requests at the rate measured")
	return cmd
}

func (o benchOptions) schedulePlan() (loadgen.Schedule, error) {
	if o.qps == 0 {
		if o.schedule != "constant" {
			return nil, fmt.Errorf("--schedule %s needs --qps", o.schedule)
		}
		return nil, nil
	}
	var s loadgen.Schedule
	switch o.schedule {
	case "constant":
		s = loadgen.Constant{QPS: o.qps}
	case "poisson":
		s = loadgen.NewPoisson(o.qps, o.seed)
	case "ramp":
		over := o.rampOver
		if over == 0 {
			over = o.duration
		}
		s = loadgen.Ramp{From: o.qps, To: o.qpsTo, Over: over}
	case "step":
		s = &loadgen.Steps{Start: o.qps, Step: o.step, Max: o.qpsTo, Every: o.stepEvery}
	case "sine":
		s = &loadgen.Sine{Mean: o.qps, Amplitude: o.amplitude, Period: o.period}
	default:
		return nil, fmt.Errorf("--schedule %q: want constant, poisson, ramp, step or sine", o.schedule)
	}
	if err := loadgen.Validate(s); err != nil {
		return nil, fmt.Errorf("--schedule %s: %w", o.schedule, err)
	}
	return s, nil
}

func runBench(ctx context.Context, o benchOptions, stdout, stderr io.Writer) error {
	if err := o.out.check(); err != nil {
		return err
	}
	defer gcfloor.Hold(gcfloor.DefaultFloor)() // the generator's live heap is small too
	var rates []float64
	if o.qpsSpec != "" {
		var err error
		if rates, err = loadgen.ParseRates(o.qpsSpec); err != nil {
			return err
		}
		o.qps = rates[0]
	}
	if o.findMax {
		if o.slo == "" {
			return errors.New("--find-max needs --slo, the objective a rate must meet, such as 'p99<50ms'")
		}
		if len(rates) > 1 {
			return errors.New("--find-max searches by itself: give --qps one start rate, not a sweep")
		}
		if o.qps == 0 {
			o.qps = 100
		}
	}
	if o.tui && (len(rates) > 1 || o.findMax) {
		return errors.New("--tui watches one run: drop it for a sweep or --find-max")
	}
	if o.retries < 0 || o.retries > 10 {
		return fmt.Errorf("--retries %d: want 0 to 10", o.retries)
	}
	budget, err := strconv.ParseFloat(strings.TrimSuffix(o.retryBudget, "%"), 64)
	if err != nil || !strings.HasSuffix(o.retryBudget, "%") || budget <= 0 || budget > 100 {
		return fmt.Errorf("--retry-budget %q: want a percentage in (0, 100], such as 10%%", o.retryBudget)
	}
	if o.pricePerHour < 0 {
		return fmt.Errorf("--price-per-hour %v: want a price of 0 or more", o.pricePerHour)
	}
	if o.html != "" && (len(rates) > 1 || o.findMax) {
		return errors.New("--html reports one run: use --csv for a sweep or --find-max")
	}
	if (len(rates) > 1 || o.findMax) && o.schedule != "constant" && o.schedule != "poisson" {
		return fmt.Errorf("--schedule %s cannot be swept: sweeps and --find-max run constant or poisson loads", o.schedule)
	}
	if o.duration <= 0 && o.requests == 0 {
		return errors.New("--duration and --requests are both 0: the run would never end")
	}
	if o.rows < 1 {
		return fmt.Errorf("--batch-size %d: want at least 1", o.rows)
	}
	if err := o.checkModels(); err != nil {
		return err
	}
	var objectives []loadgen.Objective
	if o.slo != "" {
		var err error
		if objectives, err = loadgen.ParseSLO(o.slo); err != nil {
			return err
		}
	}
	sched, err := o.schedulePlan()
	if err != nil {
		return err
	}
	if o.url == "" {
		o.url = "http://localhost:8000"
		if o.protocol == loadgen.ProtoGRPC {
			o.url = "localhost:8001"
		}
	} else if o.protocol != loadgen.ProtoGRPC && !strings.Contains(o.url, "://") {
		o.url = "http://" + o.url // host:port, as gRPC's address is given
	}
	conns := o.concurrency
	if conns <= 0 {
		conns = 1
		if sched != nil {
			conns = loadgen.DefaultMaxInFlight
		}
	}

	setup, cancel := context.WithTimeout(ctx, o.setupTimeout())
	defer cancel()
	var (
		target loadgen.Target
		model  string
		stats  loadgen.StatsReader // nil for plain HTTP
		done   = func() {}
	)
	if o.protocol == loadgen.ProtoOpenAI {
		if target, model, err = o.openAITarget(setup, conns); err != nil {
			return err
		}
	} else if o.protocol == "http" {
		if target, done, err = o.plainTarget(conns); err != nil {
			return err
		}
		if o.targets != "" {
			o.url = o.targets // what the report names
		}
	} else {
		v2 := loadgen.V2Options{URL: o.url, Protocol: o.protocol, Model: o.model, Version: o.version, Models: o.models, Zipf: o.zipf, Rows: o.rows, Conns: conns, Cold: o.cold, Seed: o.seed,
			Shapes: map[string][]int64{}, InputData: o.inputData, Queue: o.queue}
		if v2.Queue == "" && o.protocol == loadgen.ProtoNATS {
			v2.Queue = "nats://localhost:4222"
		} else if v2.Queue == "" && o.protocol == loadgen.ProtoRedis {
			v2.Queue = "redis://localhost:6379"
		}
		for _, s := range o.shapes {
			name, shape, err := loadgen.ParseShape(s)
			if err != nil {
				return err
			}
			v2.Shapes[name] = shape
		}
		if o.textFile != "" {
			data, err := os.ReadFile(o.textFile)
			if err != nil {
				return fmt.Errorf("--text-file: %w", err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if line = strings.TrimSpace(line); line != "" {
					v2.Texts = append(v2.Texts, line)
				}
			}
			if len(v2.Texts) == 0 {
				return fmt.Errorf("--text-file %s holds no lines", o.textFile)
			}
		}
		var m loadgen.Model
		if target, m, done, err = loadgen.NewV2Target(setup, v2); err != nil {
			return err
		}
		model, stats = m.Name, m.Stats
		if m.Protocol != o.protocol {
			fmt.Fprintf(stderr, "infer bench: %s does not advertise the binary tensor extension (GET /v2): sending %s\n", o.url, m.Protocol)
			o.protocol = m.Protocol
		}
	}
	defer done()
	var retrying *loadgen.Retrying
	if o.retries > 0 {
		retrying = loadgen.NewRetrying(target, loadgen.RetryPolicy{Max: o.retries, Budget: budget / 100})
		target = retrying
	}

	bench := &loadgen.Bench{Target: target, Stats: stats, Retrying: retrying, URL: o.url, Model: model, Protocol: o.protocol,
		Run:   loadgen.Options{Concurrency: o.concurrency, Duration: o.duration, Requests: o.requests, Warmup: o.warmup, Timeout: o.timeout, Objectives: objectives, Live: o.tui},
		Conns: conns, Settings: o.settings, USDPerHour: o.pricePerHour,
		Schedule: func(rate float64) (loadgen.Schedule, error) {
			at := o // the options as given, at this load's rate
			at.qps = rate
			return at.schedulePlan()
		}}

	if len(rates) > 1 || o.findMax {
		return capacity(ctx, bench, o, rates, objectives, stdout, stderr)
	}
	mode := fmt.Sprintf("closed loop, %d in flight", conns)
	rate := 0.0
	if sched != nil {
		mode, rate = fmt.Sprintf("open loop, %s from %.0f/s", o.schedule, o.qps), o.qps
	}
	what := o.protocol + " " + o.url
	if model != "" {
		what += " model " + model
	}
	fmt.Fprintf(stderr, "infer bench: %s, %s, for %v%s\n", what, mode, o.duration, requestsNote(o.requests))
	var report loadgen.Report
	if o.tui {
		watched := tui.BenchOptions{Target: what, Load: mode, Duration: o.duration, Warmup: o.warmup, Requests: o.requests,
			Objectives: objectives, USDPerHour: o.pricePerHour}
		report, err = watchRun(ctx, watched, stdout, stderr, func(ctx context.Context, watch func(loadgen.Progress)) (loadgen.Report, error) {
			return bench.Measure(ctx, rate, watch)
		})
	} else {
		bar := newProgress(stderr, o.warmup+o.duration, o.requests)
		report, err = bench.Measure(ctx, rate, bar.update)
		bar.done()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err := writeCSV(o.csvFile, []loadgen.Report{report}); err != nil {
		return err
	}
	if o.html != "" {
		if err := writeFile(o.html, func(w io.Writer) error { return loadgen.WriteHTML(w, report) }); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	if err := o.out.write(stdout, report, report.WriteText); err != nil {
		return err
	}
	if report.Requests > 0 && report.OK == 0 {
		kind := firstError(report.Errors)
		err := fmt.Errorf("every request failed: %s: %s", kind, report.ErrorMessages[kind])
		if hint := protocolHint(o.protocol, model, report.ErrorMessages[kind]); hint != "" {
			err = fmt.Errorf("%w\n%s", err, hint)
		}
		return err
	}
	return judge(report, objectives, stderr)
}

// judge prints a line for every objective, met or missed, and returns
// errSLO when any was missed.
func judge(report loadgen.Report, objectives []loadgen.Objective, stderr io.Writer) error {
	missed := false
	for _, j := range report.Judge(objectives) {
		verdict := "met"
		if !j.Met {
			verdict, missed = "missed", true
		}
		fmt.Fprintf(stderr, "infer bench: SLO %s: %s: %s\n", verdict, j.Objective, j.Figure)
	}
	if missed {
		return errSLO
	}
	return nil
}

// protocolHint suggests the protocol a model's server asked for, when a
// run failed because it spoke the wrong one: a text generator answers
// completions, not tensors.
func protocolHint(protocol, model, message string) string {
	if protocol != loadgen.ProtoOpenAI && strings.Contains(message, "/v1/completions") {
		return fmt.Sprintf("hint: %s generates text: benchmark it with --protocol openai -m %s", orDefault(model, "the model"), orDefault(model, "NAME"))
	}
	return ""
}

// orDefault is s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// watchRun runs a load under the live dashboard: full screen on a
// terminal, where q stops the run early (what was recorded is still
// reported), and plain snapshots on stderr elsewhere.
func watchRun(ctx context.Context, o tui.BenchOptions, stdout, stderr io.Writer, run func(context.Context, func(loadgen.Progress)) (loadgen.Report, error)) (loadgen.Report, error) {
	dash := tui.NewBench(o)
	f, isFile := stdout.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return run(ctx, func(p loadgen.Progress) {
			dash.Update(tui.BenchProgress(p))
			fmt.Fprint(stderr, dash.Plain(100)+"\n")
		})
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	prog := tea.NewProgram(dash, tea.WithContext(ctx), tea.WithOutput(stdout))
	var wg sync.WaitGroup
	var uiErr error
	wg.Go(func() {
		_, uiErr = prog.Run()
		stop() // the dashboard closed: q ends the run
	})
	report, err := run(runCtx, func(p loadgen.Progress) { prog.Send(tui.BenchProgress(p)) })
	prog.Send(tui.BenchDone{})
	wg.Wait()
	if uiErr != nil && !errors.Is(uiErr, tea.ErrProgramKilled) && !errors.Is(uiErr, context.Canceled) {
		return report, fmt.Errorf("dashboard: %w", uiErr)
	}
	if dash.Stopped() {
		fmt.Fprintln(stderr, "infer bench: stopped from the dashboard; reporting what was recorded")
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			err = nil
		}
	}
	return report, err
}

func requestsNote(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" or %d requests", n)
}

// firstError names the commonest kind of failure.
func firstError(errs map[string]int64) string {
	var best string
	var n int64
	for k, v := range errs {
		if v > n || v == n && k < best {
			best, n = k, v
		}
	}
	return best
}

func newBenchCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Show the difference between two runs saved with --output json",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reports [2]loadgen.Report
			for i, path := range args {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(data, &reports[i]); err != nil || reports[i].Requests == 0 {
					return fmt.Errorf("%s: not a report of one run (save one with infer bench --output json)", path)
				}
			}
			// The server is what is compared; the rest shape only the output.
			if diff := loadgen.SettingsDiff(reports[0], reports[1], "server", "output", "csv", "html", "tui", "log-level", "price-per-hour", "slo"); len(diff) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "the runs' settings differ: %s\n\n", strings.Join(diff, "; "))
			}
			return loadgen.WriteComparison(cmd.OutOrStdout(), args[0], args[1], loadgen.Compare(reports[0], reports[1]))
		},
	}
}

// writeFile writes a file through write, closing it either way.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
