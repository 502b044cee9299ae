package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tui"
)

// mlpLoad sends n good requests to mlp from 8 clients, and bad ones
// (a wrong shape: 400) after them, and returns the server's handling
// time of each good one, from its Server-Timing header.
func mlpLoad(t *testing.T, addr string, n, bad int) []float64 {
	t.Helper()
	good, hl, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/v2/models/mlp/infer"
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(body []byte, hl int64) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		if hl > 0 {
			req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	var mu sync.Mutex
	var totals []float64
	var wg sync.WaitGroup
	const clients = 8
	for c := range clients {
		wg.Go(func() {
			for i := c; i < n; i += clients {
				resp, b, err := send(good, hl)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("request %d: %v %s", i, err, b)
					return
				}
				timing, ok := profile.ParseServerTiming(resp.Header.Get("Server-Timing"))
				if !ok {
					t.Errorf("request %d: no Server-Timing", i)
					return
				}
				mu.Lock()
				totals = append(totals, timing.Get(profile.Total).Seconds())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	badBody := []byte(`{"inputs":[{"name":"image","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`)
	for range bad {
		resp, b, err := send(badBody, 0)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("bad request: %v %s", err, b)
		}
	}
	return totals
}

// scrapeValue reads one series' value from a server's /metrics text.
func scrapeValue(t *testing.T, metricsAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// parseDur reads the dashboard's durations (850µs, 1.25ms, 2.10s).
func parseDur(t *testing.T, s string) float64 {
	t.Helper()
	d, err := time.ParseDuration(strings.Replace(s, "µs", "us", 1))
	if err != nil {
		t.Fatalf("%q is not a duration: %v", s, err)
	}
	return d.Seconds()
}

// The numbers `infer top` shows for a model under load agree with the
// server: the request count and error rate with what was sent, the
// p99 with the server's own Server-Timing totals (to the resolution of
// its histogram buckets), the cost with the server's cost counter.
func TestTopAgreesWithTheServer(t *testing.T) {
	addrs, stop, done := startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	api, metrics := "http://"+addrs["HTTP"], "http://"+addrs["metrics"]

	mon, err := monitor.New(monitor.Options{Servers: []monitor.Server{{API: api, Metrics: metrics}}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	costSeries := `infer_cost_usd_total{model="mlp",version="1"}`
	costBefore := scrapeValue(t, addrs["metrics"], costSeries)
	mon.Poll(context.Background())
	const n, bad = 400, 10
	totals := mlpLoad(t, addrs["HTTP"], n, bad)
	frame := mon.Poll(context.Background())
	costAfter := scrapeValue(t, addrs["metrics"], costSeries)

	screen := tui.PlainFrame(tui.TopOptions{Servers: []string{api}}, frame, 160)
	// The cells of mlp v1's row, by their column's title.
	var header, cells []string
	for _, line := range strings.Split(screen, "\n") {
		switch f := strings.Fields(line); {
		case len(f) > 10 && f[0] == "MODEL":
			header = f
		case len(f) > 10 && f[0] == "mlp" && f[1] == "1":
			cells = f
		}
	}
	if cells == nil || len(cells) < len(header)-1 {
		t.Fatalf("no row for mlp v1:\n%s", screen)
	}
	cell := func(title string) string {
		i := slices.Index(header, title)
		if i < 0 {
			t.Fatalf("no column %s:\n%s", title, screen)
		}
		return cells[i]
	}
	var row monitor.Row
	for _, r := range frame.Rows {
		if r.Model == "mlp" {
			row = r
		}
	}
	if row.Requests != n+bad {
		t.Errorf("the window holds %v requests, want the %d sent", row.Requests, n+bad)
	}
	// REQ/S is whole requests a second, or thousands past 10,000 ("10.3k").
	rate := float64(n+bad) / row.Window.Seconds()
	want := strconv.FormatFloat(rate, 'f', 0, 64)
	if rate >= 1e4 {
		want = strconv.FormatFloat(rate/1e3, 'f', 1, 64) + "k"
	}
	if got := cell("REQ/S"); got != want {
		t.Errorf("REQ/S shows %s, want %s (%d requests over %v)", got, want, n+bad, row.Window)
	}
	if want := fmt.Sprintf("%.1f%%", 100*float64(bad)/float64(n+bad)); cell("ERR") != want {
		t.Errorf("ERR shows %s, want %s", cell("ERR"), want)
	}
	if cell("QUEUE") != "0" || cell("INFL") != "0" {
		t.Errorf("QUEUE %s, INFL %s after the load, want 0 and 0", cell("QUEUE"), cell("INFL"))
	}
	if cell("MEM") == "-" || cell("IDLE") == "-" {
		t.Errorf("MEM %s, IDLE %s for a loaded version the load just used, want its memory and idle time", cell("MEM"), cell("IDLE"))
	}

	// The p99 shown lies in the histogram bucket that holds the true p99
	// of the server's own timings.
	sort.Float64s(totals)
	exact := totals[int(math.Ceil(0.99*float64(len(totals))))-1]
	shown := parseDur(t, cell("P99"))
	lo, hi := bucketAround(exact)
	if shown < lo*0.99 || shown > hi*1.01 {
		t.Errorf("P99 shows %s; the server's exact p99 is %v, in the bucket (%v, %v]", cell("P99"), exact, lo, hi)
	}

	// $/1K is the server's cost counter over the window, per 1,000 successes.
	wantUSD := 1000 * (costAfter - costBefore) / n
	got, err := strconv.ParseFloat(strings.TrimPrefix(cell("$/1K"), "$"), 64)
	if err != nil || math.Abs(got-wantUSD) > 0.06*wantUSD {
		t.Errorf("$/1K shows %s, want %.3g from the server's cost counter", cell("$/1K"), wantUSD)
	}
}

// bucketAround returns the bounds of the server's latency bucket holding
// v, widened by a microsecond each way for Server-Timing's rounding.
func bucketAround(v float64) (float64, float64) {
	bounds := []float64{0}
	for b := 50e-6; b <= 10.0001; b *= math.Pow(10/50e-6, 1.0/23) {
		bounds = append(bounds, b)
	}
	lo, hi := 0.0, bounds[len(bounds)-1]
	for i := 1; i < len(bounds); i++ {
		if v-1e-6 <= bounds[i] {
			lo = bounds[i-1]
			break
		}
	}
	for i := 1; i < len(bounds); i++ {
		if v+1e-6 <= bounds[i] {
			hi = bounds[i]
			break
		}
	}
	return lo, hi
}

// The dashboard, driven by key presses, polls a real server under load.
func TestTopDashboardOnARealServer(t *testing.T) {
	addrs, stop, done := startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	api := "http://" + addrs["HTTP"]
	mon, err := monitor.New(monitor.Options{Servers: []monitor.Server{{API: api, Metrics: "http://" + addrs["metrics"]}}, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loadDone sync.WaitGroup
	loadDone.Go(func() { mlpLoad(t, addrs["HTTP"], 600, 0) })

	tm := teatest.NewTestModel(t, tui.NewTop(tui.TopOptions{Poll: mon.Poll, Interval: 100 * time.Millisecond, Servers: []string{api}, Context: ctx}),
		teatest.WithInitialTermSize(120, 30))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("text-encoder")) },
		teatest.WithDuration(15*time.Second), teatest.WithCheckInterval(50*time.Millisecond))
	loadDone.Wait()
	// Move to mlp and open its detail: the figures are for mlp.
	for _, k := range []string{"/", "m", "l", "p"} {
		tm.Send(tea.KeyPressMsg{Code: rune(k[0]), Text: k})
	}
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	final := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*tui.Top)
	screen := final.Render()
	if !regexp.MustCompile(`mlp v1`).MatchString(screen) || !strings.Contains(screen, "requests/s") {
		t.Fatalf("the detail of mlp is not shown:\n%s", screen)
	}
	if strings.Contains(screen, "text-encoder") {
		t.Fatalf("the filter let other models through:\n%s", screen)
	}
}

// `infer top` without a terminal prints plain snapshots, finding the
// metrics on the server's own URL.
func TestTopPlainSnapshots(t *testing.T) {
	addrs, stop, done := startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	_, adminPort, _ := strings.Cut(addrs["admin"], ":")
	// Each read of the server is bounded by the interval (at most 2 s): a
	// loaded machine needs the whole of it.
	out, err := run(t, "top", "--server", addrs["HTTP"], "--admin-port", adminPort, "--interval", "2s", "--window", "2s", "--count", "2", "--width", "100")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.Count(out, "infer top · http://"+addrs["HTTP"]); got != 2 {
		t.Fatalf("%d snapshots, want 2:\n%s", got, out)
	}
	for _, want := range []string{"MODEL", "mlp", "text-encoder", "queue"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the snapshot lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "\x1b[") || len([]rune(line)) > 100 {
			t.Fatalf("not plain %d-column text: %q", 100, line)
		}
	}

	// -o json: one snapshot a line, each model version's figures, for a
	// program; the server given as an argument, as infer bench takes it.
	out, err = run(t, "top", "http://"+addrs["HTTP"], "--admin-port", adminPort, "--interval", "500ms", "--window", "1s", "--count", "2", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var snap struct {
		At     time.Time
		Models []struct {
			Server, Model, Version string
			Ready                  bool
			P99                    *float64 `json:"p99_seconds"`
			RequestsPerSecond      *float64 `json:"requests_per_second"`
		}
	}
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &snap) != nil || snap.At.IsZero() || len(snap.Models) < 4 {
		t.Fatalf("top -o json: want 2 lines of snapshots with the models:\n%s", out)
	}
	for _, m := range snap.Models {
		if m.Server != "http://"+addrs["HTTP"] || m.Model == "" || m.Version == "" || !m.Ready || m.RequestsPerSecond == nil {
			t.Fatalf("top -o json: model %+v", m)
		}
	}

	for _, c := range []struct{ args, want string }{
		{"--interval 0s", "--interval"},
		{"-o yaml", "--output \"yaml\": want text or json"},
		{"--window 100ms --interval 1s", "shorter than --interval"},
		{"--slo p99", "--slo"},
		{"--width 40", "--width"},
		{"--price-per-hour -1", "--price-per-hour"},
	} {
		out, err := run(t, append([]string{"top", "--count", "1"}, strings.Fields(c.args)...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("top %s: %v (want an error naming %s)\n%s", c.args, err, c.want, out)
		}
	}
}

// A server that cannot be read is an error and a non-zero exit, naming
// the server and why, never an empty dashboard; the metrics port of a
// server laid out as Triton's is still read where --metrics-port says,
// and an admin API out of reach is named on the dashboard.
func TestTopUnreachableServerFails(t *testing.T) {
	// Port 1 (tcpmux) is served nowhere: a port freed by a listener here
	// could be taken by another test's server before top reads it.
	dead := "127.0.0.1:1"
	out, err := run(t, "top", "--server", dead, "--plain", "--count", "1")
	if err == nil || !strings.Contains(err.Error(), "cannot read any server's metrics") || !strings.Contains(err.Error(), dead) {
		t.Fatalf("top of %s: err %v, want one naming the server\n%s", dead, err, out)
	}
	if strings.Contains(out, "no models") {
		t.Fatalf("an unreachable server shown as a dashboard:\n%s", out)
	}

	addrs, stop, done := startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	_, port, _ := strings.Cut(addrs["metrics"], ":")
	out, err = run(t, "top", "--server", addrs["HTTP"], "--metrics-port", port, "--admin-port", "0", "--interval", "200ms", "--window", "200ms", "--count", "1")
	if err != nil || !strings.Contains(out, "text-encoder") {
		t.Fatalf("top on the metrics port: %v\n%s", err, out)
	}

	// Its admin API where --admin-port does not point: the rollouts are
	// said to be unread, and why, where they went missing without a word.
	out, err = run(t, "top", "--server", addrs["HTTP"], "--metrics-port", port, "--admin-port", "1", "--interval", "200ms", "--window", "200ms", "--count", "1", "--width", "200")
	if err != nil || !strings.Contains(out, "rollouts of http://"+addrs["HTTP"]+" unread: cannot reach the admin API at http://127.0.0.1:1") {
		t.Fatalf("top with the admin API elsewhere: %v, want the rollouts said unread\n%s", err, out)
	}
}

// A text generator's row carries its generation figures.
func TestTopShowsGenerators(t *testing.T) {
	addrs, stop, done := startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	mon, err := monitor.New(monitor.Options{Servers: []monitor.Server{{API: "http://" + addrs["HTTP"], Metrics: "http://" + addrs["metrics"]}}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mon.Poll(context.Background())
	for range 3 {
		resp, err := http.Post("http://"+addrs["HTTP"]+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"tiny-gpt","prompt":"the city","max_tokens":20,"temperature":0}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("completion: %s", resp.Status)
		}
	}
	screen := tui.PlainFrame(tui.TopOptions{Servers: []string{"http://" + addrs["HTTP"]}}, mon.Poll(context.Background()), 140)
	if !strings.Contains(screen, "tiny-gpt v1 tokens: TTFT p50") || !regexp.MustCompile(`tiny-gpt +1 +\S+ `).MatchString(screen) {
		t.Fatalf("no generation figures for tiny-gpt:\n%s", screen)
	}
	var row monitor.Row
	for _, r := range mon.Poll(context.Background()).Rows {
		row = r
	}
	if !row.Generator || row.Requests != 3 {
		t.Fatalf("tiny-gpt: generator %v, %v requests in the window, want 3", row.Generator, row.Requests)
	}
}
