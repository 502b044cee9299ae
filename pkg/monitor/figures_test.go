package monitor

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/infer-serving/infer/pkg/profile"
)

// fakeServer exports the server's metric families from a registry of its
// own, so tests know exactly what went in; restart starts them afresh.
type fakeServer struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	phases   *prometheus.HistogramVec
	total    *prometheus.HistogramVec
	busy     *prometheus.CounterVec
	queue    *prometheus.GaugeVec
	cache    *prometheus.CounterVec
}

var testBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05}

func newFakeServer() *fakeServer {
	f := &fakeServer{reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests}, []string{"model", "version", "protocol", "outcome"}),
		phases:   prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricPhases, Buckets: testBuckets}, []string{"model", "version", "phase"}),
		total:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricTotal, Buckets: testBuckets}, []string{"model", "version"}),
		busy:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricBusy}, []string{"model", "version"}),
		queue:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricQueue}, []string{"model", "version"}),
		cache:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricCache}, []string{"model", "version", "result"}),
	}
	f.reg.MustRegister(f.requests, f.phases, f.total, f.busy, f.queue, f.cache)
	return f
}

// serve records n requests of model/version taking total each, split
// evenly between queue and infer.
func (f *fakeServer) serve(model, version string, n int, total time.Duration) {
	for range n {
		f.requests.WithLabelValues(model, version, "http", "success").Inc()
		f.total.WithLabelValues(model, version).Observe(total.Seconds())
		f.phases.WithLabelValues(model, version, "queue").Observe(total.Seconds() / 2)
		f.phases.WithLabelValues(model, version, "infer").Observe(total.Seconds() / 2)
	}
	f.busy.WithLabelValues(model, version).Add(float64(n) * total.Seconds() / 2)
}

func (f *fakeServer) sample(t *testing.T, at time.Time) Sample {
	t.Helper()
	return gather(t, f.reg, at)
}

// gather reads reg's metrics as the server exports them, and parses the
// exposition as a scrape at at.
func gather(t *testing.T, reg prometheus.Gatherer, at time.Time) Sample {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Parse(&buf, "http://127.0.0.1:8000", at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestBetweenIsTheWindowNotTheLifetime(t *testing.T) {
	srv := newFakeServer()
	t0 := time.Unix(1000, 0)
	// Before the window: 1,000 slow requests the window must not see.
	srv.serve("mlp", "1", 1000, 40*time.Millisecond)
	before := srv.sample(t, t0)
	// In the window: 100 fast ones and 10 that were shed.
	srv.serve("mlp", "1", 100, 1500*time.Microsecond)
	srv.requests.WithLabelValues("mlp", "1", "grpc", "queue_full").Add(10)
	srv.queue.WithLabelValues("mlp", "1").Set(7)
	srv.cache.WithLabelValues("mlp", "1", "hit").Add(30)
	srv.cache.WithLabelValues("mlp", "1", "miss").Add(90)
	now := srv.sample(t, t0.Add(10*time.Second))

	rows := Between(before, now, 0)
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	f := rows[0]
	if f.Requests != 110 || !near(f.Rate, 11, 1e-9) {
		t.Fatalf("requests %v at %v/s, want 110 at 11/s", f.Requests, f.Rate)
	}
	if !near(f.ErrorRate, 10.0/110, 1e-9) || f.Errors["queue_full"] != 10 {
		t.Fatalf("error rate %v %v, want 10 of 110 queue_full", f.ErrorRate, f.Errors)
	}
	// All 100 fell in the (1ms, 2ms] bucket: the p50 interpolates to its
	// middle, and the lifetime's 40 ms requests are nowhere.
	if !near(f.P50, 0.0015, 1e-9) || f.P99 > 0.002 {
		t.Fatalf("p50 %v p99 %v, want 1.5ms and at most 2ms", f.P50, f.P99)
	}
	if !near(f.Budget[profile.Queue], 0.00075, 1e-9) || !near(f.Budget[profile.Infer], 0.00075, 1e-9) {
		t.Fatalf("budget queue %v infer %v, want 0.75ms each", f.Budget[profile.Queue], f.Budget[profile.Infer])
	}
	if !math.IsNaN(f.Budget[profile.Preprocess]) {
		t.Fatalf("preprocess %v, want NaN: nothing observed", f.Budget[profile.Preprocess])
	}
	if f.Queue != 7 || !near(f.CacheHitRate, 0.25, 1e-9) {
		t.Fatalf("queue %v cache hit rate %v, want 7 and 0.25", f.Queue, f.CacheHitRate)
	}
	if !math.IsNaN(f.CostPer1k) {
		t.Fatalf("cost %v without a price, want NaN", f.CostPer1k)
	}
}

// A server from before infer_request_total_duration_seconds exported the
// total as a phase: its latency still reads, and the phases' own series
// are not taken for it.
func TestTotalFromAnOlderServer(t *testing.T) {
	old := newFakeServer()
	t0 := time.Unix(1000, 0)
	before := old.sample(t, t0)
	for range 50 {
		old.requests.WithLabelValues("mlp", "1", "http", "success").Inc()
		old.phases.WithLabelValues("mlp", "1", "total").Observe(0.015)
		old.phases.WithLabelValues("mlp", "1", "infer").Observe(0.0015)
	}
	f := Between(before, old.sample(t, t0.Add(time.Second)), 0)[0]
	if f.P50 <= 0.01 || f.P50 > 0.02 || !near(f.Budget[profile.Infer], 0.0015, 1e-9) {
		t.Fatalf("p50 %v infer %v, want within (10ms, 20ms] and 1.5ms", f.P50, f.Budget[profile.Infer])
	}
}

func TestBetweenAcrossARestart(t *testing.T) {
	srv := newFakeServer()
	t0 := time.Unix(1000, 0)
	srv.serve("mlp", "1", 500, 40*time.Millisecond)
	before := srv.sample(t, t0)

	// The server restarts: its counters begin again at 0, and it serves
	// 20 requests before the next read. The window holds those 20, not a
	// negative count.
	srv = newFakeServer()
	srv.serve("mlp", "1", 20, 3*time.Millisecond)
	now := srv.sample(t, t0.Add(5*time.Second))

	f := Between(before, now, 0)[0]
	if f.Requests != 20 || !near(f.Rate, 4, 1e-9) {
		t.Fatalf("requests %v at %v/s, want 20 at 4/s", f.Requests, f.Rate)
	}
	if f.P99 <= 0.002 || f.P99 > 0.005 {
		t.Fatalf("p99 %v, want within the (2ms, 5ms] bucket", f.P99)
	}
}

func TestServerPriceIsSplitByBusyTime(t *testing.T) {
	srv := newFakeServer()
	t0 := time.Unix(1000, 0)
	before := srv.sample(t, t0)
	// Over an hour, a uses 3 busy seconds for 300 requests and b 1 for 1,000.
	srv.serve("a", "1", 300, 20*time.Millisecond)
	srv.serve("b", "1", 1000, 2*time.Millisecond)
	now := srv.sample(t, t0.Add(time.Hour))

	rows := Between(before, now, 4) // $4 an hour: a pays $3, b $1
	if rows[0].Model != "a" || rows[1].Model != "b" {
		t.Fatalf("rows %v %v, want a then b", rows[0].Key, rows[1].Key)
	}
	if !near(rows[0].CostPer1k, 10, 1e-6) || !near(rows[1].CostPer1k, 1, 1e-6) {
		t.Fatalf("cost per 1k: a %v b %v, want 10 and 1", rows[0].CostPer1k, rows[1].CostPer1k)
	}
}

func TestMonitorWindowAndTrend(t *testing.T) {
	m, err := New(Options{Servers: []Server{{API: "http://127.0.0.1:8000"}}, Window: 3 * time.Second, History: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := newFakeServer()
	t0 := time.Unix(1000, 0)
	var rows []Row
	for i := range 20 {
		srv.serve("mlp", "1", 10*(i+1), time.Millisecond)
		rows = m.Add(srv.sample(t, t0.Add(time.Duration(i)*time.Second)))
		if i == 0 && !math.IsNaN(rows[0].Rate) {
			t.Fatalf("first sample: rate %v, want NaN (no window yet)", rows[0].Rate)
		}
	}
	// The last three seconds served 180+190+200 requests.
	if r := rows[0]; r.Requests != 570 || r.Window != 3*time.Second {
		t.Fatalf("window %v holds %v requests, want 3s and 570", r.Window, r.Requests)
	}
	trend := rows[0].Trend
	if len(trend) < 10 || len(trend) > 11 || trend[len(trend)-1].Rate != 200 {
		t.Fatalf("trend of %d points ending at %v/s, want 10-11 ending at 200/s", len(trend), trend[len(trend)-1].Rate)
	}
}

func TestGeneratorFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	ttft := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricTTFT, Buckets: testBuckets}, []string{"model", "version"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricTokens}, []string{"model", "version", "kind"})
	seqs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricSequences}, []string{"model", "version", "state"})
	reg.MustRegister(ttft, tokens, seqs)
	sample := func(at time.Time) Sample {
		families, _ := reg.Gather()
		var buf bytes.Buffer
		for _, mf := range families {
			_, _ = expfmt.MetricFamilyToText(&buf, mf)
		}
		s, err := Parse(&buf, "http://127.0.0.1:8000", at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t0 := time.Unix(1000, 0)
	tokens.WithLabelValues("gpt", "1", "output").Add(5000) // before the window
	before := sample(t0)
	for range 10 {
		ttft.WithLabelValues("gpt", "1").Observe(0.015) // (10ms, 20ms]
	}
	tokens.WithLabelValues("gpt", "1", "output").Add(600)
	tokens.WithLabelValues("gpt", "1", "prompt").Add(99)
	seqs.WithLabelValues("gpt", "1", "running").Set(3)
	f := Between(before, sample(t0.Add(2*time.Second)), 0)[0]
	if !f.Generator || f.TokenRate != 300 || f.Running != 3 || f.TTFT99 <= 0.01 || f.TTFT99 > 0.02 {
		t.Fatalf("generator figures %+v", f)
	}
}
