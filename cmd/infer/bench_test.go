package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// infer bench against a real infer serve on loopback, over each protocol:
// every request answered, the server's phases received, and the budget
// phases adding up to the total.
func TestBenchAgainstServeEveryProtocol(t *testing.T) {
	httpAddr, grpcAddr, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	for _, tc := range []struct {
		protocol, url string
		open          bool
	}{
		{loadgen.ProtoHTTPBinary, "http://" + httpAddr, false},
		{loadgen.ProtoHTTPJSON, httpAddr, true}, // host:port, as gRPC's: http:// is assumed
		{loadgen.ProtoGRPC, grpcAddr, false},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			o := benchDefaults(tc.url, tc.protocol)
			o.model, o.requests, o.concurrency = "mlp", 300, 4
			if tc.open {
				o.qps, o.concurrency = 400, 64
			}
			var out bytes.Buffer
			if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			var r loadgen.Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if r.Requests != 300 || r.OK != 300 || r.ServerReported != 300 || r.Model != "mlp" {
				t.Fatalf("report %+v", r)
			}
			var shares float64
			phase := map[string]loadgen.PhaseReport{}
			for _, p := range r.Phases {
				shares += p.Share
				phase[p.Phase] = p
			}
			if math.Abs(shares-1) > 1e-6 {
				t.Fatalf("phase shares add up to %v, want 1", shares)
			}
			if phase["infer"].Mean <= 0 || phase["queue"].Share <= 0 || phase["network"].Mean <= 0 {
				t.Fatalf("phases %+v", phase)
			}
			if tc.open && (r.Mode != "open" || r.TargetRate < 300 || r.TargetRate > 500) {
				t.Fatalf("open loop: mode %s, target %.1f", r.Mode, r.TargetRate)
			}
		})
	}

	// A missed objective exits non-zero; a met one does not.
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests, o.slo = "fixed-shape", 50, "p99<1ns"
	if err := runBench(context.Background(), o, io.Discard, io.Discard); !errors.Is(err, errSLO) {
		t.Fatalf("impossible SLO: err %v", err)
	}
	o.slo = "p99<10s,errors<1%"
	if err := runBench(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatalf("easy SLO: %v", err)
	}
	// Requests can come from a perf_analyzer-style file.
	o = benchDefaults("http://"+httpAddr, loadgen.ProtoGRPC)
	o.url, o.model, o.requests = grpcAddr, "fixed-shape", 20
	o.inputData = writeTemp(t, `{"data": [{"matrix": [[1, 2, 3], [4, 5, 6]]}, {"matrix": {"content": [0, 0, 0, 0, 0, 1], "shape": [2, 3]}}]}`)
	if err := runBench(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatalf("input data: %v", err)
	}
	// Text inputs take lines from --text-file.
	file := filepath.Join(t.TempDir(), "texts.txt")
	os.WriteFile(file, []byte("first sentence\nsecond, longer sentence of text\n"), 0o644)
	o = benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests, o.textFile = "text-encoder", 20, file
	var out bytes.Buffer
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil || !strings.Contains(out.String(), "preprocess") {
		t.Fatalf("text model: %v\n%s", err, out.String())
	}
}

// A server that reports no phases per response (as Triton does not) still
// gets its phases, from the statistics it accumulated during the run: here
// infer serve behind a real proxy that strips Server-Timing.
func TestBenchFallsBackToServerStats(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	backend, _ := url.Parse("http://" + httpAddr)
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.ModifyResponse = func(r *http.Response) error { r.Header.Del("Server-Timing"); return nil }
	front := httptest.NewServer(proxy)
	defer front.Close()

	o := benchDefaults(front.URL, loadgen.ProtoHTTPBinary)
	o.model, o.requests, o.concurrency = "mlp", 200, 4
	var out bytes.Buffer
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.ServerReported != 0 || r.OK != 200 {
		t.Fatalf("report %+v", r)
	}
	var shares float64
	for _, p := range r.Phases {
		shares += p.Share
		if p.Phase == "infer" && (p.Source != loadgen.SourceStats || p.Mean <= 0) {
			t.Fatalf("infer phase %+v, want a mean from the server's statistics", p)
		}
	}
	if math.Abs(shares-1) > 0.05 {
		t.Fatalf("shares add up to %v", shares)
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func benchDefaults(url, protocol string) benchOptions {
	return benchOptions{url: url, protocol: protocol, schedule: "constant", duration: 20 * time.Second, timeout: 10 * time.Second,
		rows: 1, out: &outputFlag{format: formatJSON, formats: []string{formatText, formatJSON, formatYAML}}, method: "GET", stepEvery: time.Second, period: time.Second, seed: 1, retryBudget: "10%",
		inputTokens: "64:256", outputTokens: "16:128"}
}

// Bad input gets one clear line naming what was wrong.
func TestBenchBadInput(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	base := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	base.requests = 5
	for _, tc := range []struct {
		name string
		edit func(*benchOptions)
		want string
	}{
		{"no model among several", func(o *benchOptions) {}, "choose one with --model"},
		{"unknown model", func(o *benchOptions) { o.model = "nope" }, `model "nope"`},
		{"bad shape flag", func(o *benchOptions) { o.model, o.shapes = "mlp", []string{"image:1,x"} }, `--shape "image:1,x"`},
		{"shape of a missing input", func(o *benchOptions) { o.model, o.shapes = "mlp", []string{"pixels:1,784"} }, "no input \"pixels\""},
		{"shape against the model", func(o *benchOptions) { o.model, o.shapes = "mlp", []string{"image:1,783"} }, "dimension 1 is 783"},
		{"batch of a model that takes none", func(o *benchOptions) { o.model, o.rows = "fixed-shape", 4 }, "--batch-size 4: no input of the model has a dynamic first dimension"},
		{"unreachable URL", func(o *benchOptions) { o.url, o.model = "http://127.0.0.1:1", "mlp" }, "cannot reach"},
		{"bad URL", func(o *benchOptions) { o.url = "ftp://localhost:8000" }, "want http://host:port"},
		{"bad protocol", func(o *benchOptions) { o.protocol = "soap" }, `protocol "soap"`},
		{"bad slo", func(o *benchOptions) { o.slo = "p98<1ms" }, `unknown metric "p98"`},
		{"bad schedule", func(o *benchOptions) { o.qps, o.schedule = 10, "square" }, `--schedule "square"`},
		{"sine too wide", func(o *benchOptions) { o.qps, o.schedule, o.amplitude = 10, "sine", 20 }, "amplitude"},
		{"missing text file", func(o *benchOptions) { o.model, o.textFile = "text-encoder", "/no/such/file" }, "--text-file"},
		{"unbounded", func(o *benchOptions) { o.duration, o.requests = 0, 0 }, "never end"},
		{"tui on a sweep", func(o *benchOptions) { o.model, o.qpsSpec, o.tui = "mlp", "10:20:10", true }, "--tui watches one run"},
		{"negative price", func(o *benchOptions) { o.model, o.pricePerHour = "mlp", -2 }, "--price-per-hour"},
		{"too many retries", func(o *benchOptions) { o.model, o.retries = "mlp", 50 }, "--retries 50"},
		{"bad retry budget", func(o *benchOptions) { o.model, o.retries, o.retryBudget = "mlp", 2, "lots" }, `--retry-budget "lots"`},
		{"malformed input data", func(o *benchOptions) {
			o.model, o.inputData = "mlp", writeTemp(t, `{"data": [{"image": [1, 2]}]}`)
		}, "shape [1 784] declares 784 elements, data holds 2"},
	} {
		o := base
		tc.edit(&o)
		err := runBench(context.Background(), o, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line mentioning %q", tc.name, err, tc.want)
		}
	}
}

// A sweep runs one load per rate; --find-max searches up to its cap. (Which
// rates a loaded machine sustains varies; the search maths are pinned by
// loadgen's table tests, so this checks the mechanics.)
func TestBenchSweepAndFindMax(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.duration, o.qpsSpec, o.slo = "fixed-shape", 500*time.Millisecond, "100:200:100", "p99<2s"
	var out bytes.Buffer
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var sweep struct {
		Steps        []loadgen.Report `json:"steps"`
		MaxSustained float64          `json:"max_sustained_rate"`
	}
	if err := json.Unmarshal(out.Bytes(), &sweep); err != nil || len(sweep.Steps) != 2 {
		t.Fatalf("sweep %+v %v\n%s", sweep, err, out.String())
	}
	for i, want := range []float64{100, 200} {
		if r := sweep.Steps[i]; math.Abs(r.TargetRate-want) > want/20 || r.OK != r.Requests {
			t.Fatalf("step %d: target %.1f, %d of %d answered", i, r.TargetRate, r.OK, r.Requests)
		}
	}
	o.qpsSpec, o.findMax, o.maxQPS = "100", true, 400
	out.Reset()
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &sweep); err != nil || sweep.MaxSustained > 400 || len(sweep.Steps) < 2 {
		t.Fatalf("find-max %+v %v", sweep, err)
	}
	for _, r := range sweep.Steps {
		if r.TargetRate > 420 {
			t.Fatalf("probed %.0f/s past --max-qps 400", r.TargetRate)
		}
	}
	o.slo = ""
	if err := runBench(context.Background(), o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--slo") {
		t.Fatalf("find-max without an objective: %v", err)
	}
}

// --tui off a terminal prints plain snapshots of the run as it goes, then
// the report; --price-per-hour prices the rate measured.
func TestBenchTUIPlainAndCost(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.qps, o.duration, o.tui, o.pricePerHour = "mlp", 200, 2500*time.Millisecond, true, 3.6
	var out, errOut bytes.Buffer
	if err := runBench(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	snapshots := strings.Count(errOut.String(), "infer bench · http-binary http://"+httpAddr+" model mlp")
	if snapshots < 2 || !strings.Contains(errOut.String(), "target 200/s") || !strings.Contains(errOut.String(), "budget") {
		t.Fatalf("%d snapshots, want one a second with the rate and budget:\n%s", snapshots, errOut.String())
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// $3.60 an hour is $0.001 a second: at g successful requests a second,
	// 1,000 of them cost 1/g dollars.
	want := 1 / r.GoodRate()
	if r.OK == 0 || r.USDPerHour != 3.6 || r.CostPer1k < want*0.999 || r.CostPer1k > want*1.001 {
		t.Fatalf("cost per 1k %v at %v/s, want %v", r.CostPer1k, r.GoodRate(), want)
	}
}

// infer bench streams completions from a real infer serve and measures
// them; with a long shared prefix the server's prefix cache shows.
func TestBenchOpenAI(t *testing.T) {
	addr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	o := benchDefaults("http://"+addr, loadgen.ProtoOpenAI)
	o.model, o.requests, o.concurrency, o.inputTokens, o.outputTokens, o.slo = "tiny-gpt", 24, 4, "16:32", "8:16", "ttft<5s,tpot<1s"
	var out, errOut bytes.Buffer
	if err := runBench(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	g := r.Generation
	if r.OK != 24 || r.Model != "tiny-gpt" || g == nil || g.OutputTokens < 24*8 || g.OutputTokens > 24*16 || g.TTFT.P50 <= 0 || g.TPOT.P50 <= 0 || g.Goodput <= 0 {
		t.Fatalf("report %+v, generation %+v", r, g)
	}
	// The server's phases come in the streams' Server-Timing trailers.
	phase := map[string]loadgen.PhaseReport{}
	for _, p := range r.Phases {
		phase[p.Phase] = p
	}
	if r.ServerReported != 24 || phase["infer"].Mean <= 0 || phase["preprocess"].Mean <= 0 || phase["infer"].Source != loadgen.SourceServer {
		t.Fatalf("%d of 24 answers reported their phases; phases %+v", r.ServerReported, r.Phases)
	}

	for _, bad := range []struct {
		edit func(*benchOptions)
		want string
	}{
		{func(o *benchOptions) { o.outputTokens = "9:3" }, "--output-tokens"},
		{func(o *benchOptions) { o.inputTokens = "x" }, "--input-tokens"},
		{func(o *benchOptions) { o.promptsFile = "/no/such/file" }, "--prompts"},
	} {
		o := o
		bad.edit(&o)
		if err := runBench(context.Background(), o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("err %v, want one naming %s", err, bad.want)
		}
	}
}

// infer bench says what happened: the server's own message with the
// status, a hint when the protocol does not fit the model, successful
// answers apart from those sent, a line for a met objective, and the
// run's settings in the JSON report.
func TestBenchSaysWhatHappened(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()

	// A text generator answers tensors too (text_input in, text_output
	// out, as Triton's generation backends do).
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests = "tiny-gpt", 5
	var out, errOut bytes.Buffer
	if err := runBench(context.Background(), o, &out, &errOut); err != nil {
		t.Fatalf("a text generator benchmarked over tensors: %v\n%s", err, errOut.String())
	}
	var generated loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &generated); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if generated.AchievedRate <= 0 || len(generated.ErrorMessages) != 0 {
		t.Fatalf("a text generator over tensors: achieved %v/s, errors %v", generated.AchievedRate, generated.ErrorMessages)
	}

	o = benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests, o.concurrency, o.slo = "mlp", 200, 2, "p99<30s,errors<1%"
	o.settings = map[string]string{"model": "mlp", "requests": "200"}
	out.Reset()
	errOut.Reset()
	if err := runBench(context.Background(), o, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"infer bench: SLO met: p99<30s: p99 is ", "infer bench: SLO met: errors<1%: error rate 0.00%"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Settings["model"] != "mlp" || r.Settings["requests"] != "200" || r.AchievedRate <= 0 || r.AchievedRate != r.SentRate {
		t.Fatalf("settings %v, achieved %v/s, sent %v/s", r.Settings, r.AchievedRate, r.SentRate)
	}

	// Through the command: every flag's value is recorded.
	outText, err := run(t, "bench", "--server", "http://"+httpAddr, "-m", "mlp", "--requests", "20", "-c", "2", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, outText)
	}
	var viaCLI loadgen.Report
	if err := json.Unmarshal([]byte(outText[:strings.LastIndex(outText, "}")+1]), &viaCLI); err != nil {
		t.Fatalf("%v\n%s", err, outText)
	}
	if viaCLI.Settings["server"] != "http://"+httpAddr || viaCLI.Settings["concurrency"] != "2" || viaCLI.Settings["duration"] != "10s" || viaCLI.Settings["protocol"] != "http-binary" {
		t.Fatalf("settings recorded %v", viaCLI.Settings)
	}
	if _, err := run(t, "bench", "http://"+httpAddr, "--server", "http://other:1", "-m", "mlp"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("two servers: %v", err)
	}
}

// A run stopped early (Ctrl-C, or q on the dashboard) reports the rate
// its schedule asked for over the span it ran: a 200/s run stopped after a
// second or two of its 30 says 200/s, not its count spread over 30 s.
func TestBenchTargetOnAnEarlyStop(t *testing.T) {
	addr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	o := benchDefaults("http://"+addr, loadgen.ProtoHTTPBinary)
	o.model, o.qps, o.duration = "mlp", 200, 30*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel) // stops it whatever the machine's speed: the figures judged are rates
	var out, errOut bytes.Buffer
	if err := runBench(ctx, o, &out, &errOut); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("no report after an early stop: %v\n%s%s", err, out.String(), errOut.String())
	}
	if r.Requests == 0 || r.Requests >= 200*30/2 || r.TargetRate < 190 || r.TargetRate > 210 {
		t.Fatalf("%d requests, target %.1f/s: want a short run reporting the 200/s asked for", r.Requests, r.TargetRate)
	}
}
