package deploy

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/window"
)

// observed returns latencies (in seconds) as the server exports them: a
// client_golang histogram with the server's classic buckets and native
// ones of factor 1.05, read back as the rollout engine reads it.
func observed(t testing.TB, latencies []float64) VersionMetrics {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "infer_request_total_duration_seconds", Buckets: prometheus.ExponentialBucketsRange(50e-6, 10, 24), NativeHistogramBucketFactor: 1.05,
	})
	for _, v := range latencies {
		h.Observe(v)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	n := float64(len(latencies))
	return VersionMetrics{Requests: n, Latency: window.FromProto(m.GetHistogram())}
}

// trials runs the analysis of README's example, --max-p99-ratio 1.2 at
// the default confidence, over 200 seeded steps: the stable version's and
// the candidate's latencies drawn by the functions given (each call one
// request, in seconds), and counts the verdicts.
func trials(t *testing.T, seed uint64, nStable, nCand int, stable, cand func(*rand.Rand) float64) map[string]int {
	t.Helper()
	a := Spec{}.WithDefaults().Analysis
	a.MaxP99Ratio = 1.2
	r := rand.New(rand.NewPCG(seed, 1))
	verdicts := map[string]int{}
	for range 200 {
		s, c := make([]float64, nStable), make([]float64, nCand)
		for i := range s {
			s[i] = stable(r)
		}
		for i := range c {
			c[i] = cand(r)
		}
		res := a.Analyse(VersionMetrics{}, observed(t, s), VersionMetrics{}, observed(t, c), nil, nil)
		verdicts[res.Verdict]++
		if res.Verdict == Fail && verdicts[Fail] == 1 {
			t.Logf("first rollback: %s %v", res.Reason, res.Figures)
		}
	}
	return verdicts
}

// Simulated latencies: a log-normal body (median 8ms, σ 0.3) and a heavy
// tail (3% of requests paused 3 to 10 times as long, as a GC or a noisy
// neighbour would), in the step sizes of a 10% canary, a 25% one, and the
// 96 requests of a short step.
func simulated(r *rand.Rand) float64 {
	v := 0.008 * math.Exp(0.3*r.NormFloat64())
	if r.Float64() < 0.03 {
		v *= 3 + 7*r.Float64()
	}
	return v
}

func slower(draw func(*rand.Rand) float64, k float64) func(*rand.Rand) float64 {
	return func(r *rand.Rand) float64 { return k * draw(r) }
}

func checkVerdicts(t *testing.T, name string, copyOf, slow map[string]int) {
	t.Helper()
	t.Logf("%s: identical copy %v; 1.5x slower %v", name, copyOf, slow)
	if copyOf[Fail] != 0 {
		t.Errorf("%s: an identical copy rolled back in %d of 200 trials", name, copyOf[Fail])
	}
	if slow[Fail] < 190 {
		t.Errorf("%s: a 1.5x slower version rolled back in %d of 200 trials, want at least 190", name, slow[Fail])
	}
}

func TestIdenticalCopyNeverRolledBackSimulated(t *testing.T) {
	for _, tc := range []struct {
		name          string
		nStable, nCan int
		powered       bool // enough requests to judge a p99
	}{
		{"10% canary", 4500, 500, true},
		{"25% canary", 1500, 500, true},
		{"96 requests", 300, 96, false},
	} {
		same := trials(t, 1, tc.nStable, tc.nCan, simulated, simulated)
		if !tc.powered {
			// The README's old example: a p99 over 96 requests is noise,
			// neither a rollback nor a pass.
			if same[Inconclusive] != 200 {
				t.Errorf("%s: %v, want 200 inconclusive", tc.name, same)
			}
			continue
		}
		checkVerdicts(t, tc.name, same, trials(t, 2, tc.nStable, tc.nCan, simulated, slower(simulated, 1.5)))
	}
}

// Real latencies: one bundled model loaded twice from the same bytes, as
// versions 1 and 2, and timed in turns on real ONNX Runtime sessions, so
// that the machine's noise falls on both alike. Each trial draws its
// step's requests from what was measured; the slower version's are the
// same measurements, 1.5 times as long.
func TestIdenticalCopyNeverRolledBackReal(t *testing.T) {
	if _, err := runner.InitRuntime(""); err != nil {
		t.Fatalf("the real-latency test needs ONNX Runtime (make onnxruntime): %v", err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2"} {
		os.MkdirAll(filepath.Join(dir, "mlp", v), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "mlp", v, "model.onnx"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := runner.Open(dir, runner.LoadOptions{Isolation: runner.IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var versions [2]*runner.Model
	for i := range versions {
		if versions[i], err = repo.Model("mlp", int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	req := &runner.Request{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}
	const measured = 3000
	var pools [2][]float64
	order := rand.New(rand.NewPCG(4, 5))
	for range measured {
		first := order.IntN(2) // which version goes first in this pair
		for _, i := range []int{first, 1 - first} {
			start := time.Now()
			if _, err := versions[i].Infer(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			pools[i] = append(pools[i], time.Since(start).Seconds())
		}
	}
	from := func(pool []float64) func(*rand.Rand) float64 {
		return func(r *rand.Rand) float64 { return pool[r.IntN(len(pool))] }
	}
	t.Logf("measured p50 %v and %v", observed(t, pools[0]).Latency.Quantile(0.5), observed(t, pools[1]).Latency.Quantile(0.5))
	same := trials(t, 6, 1500, 500, from(pools[0]), from(pools[1]))
	slow := trials(t, 7, 1500, 500, from(pools[0]), slower(from(pools[1]), 1.5))
	checkVerdicts(t, "real mlp latencies", same, slow)
}

// Below the minimum sample the reason says how many requests a p99 needs.
func TestLatencyInconclusiveNamesTheMinimum(t *testing.T) {
	a := Spec{}.WithDefaults().Analysis
	a.MaxP99Ratio = 1.2
	r := rand.New(rand.NewPCG(8, 9))
	draw := func(n int) VersionMetrics {
		v := make([]float64, n)
		for i := range v {
			v[i] = simulated(r)
		}
		return observed(t, v)
	}
	res := a.Analyse(VersionMetrics{}, draw(1000), VersionMetrics{}, draw(96), nil, nil)
	if res.Verdict != Inconclusive || !strings.Contains(res.Reason, "want at least 368 each at 95% confidence") {
		t.Fatalf("%s %q", res.Verdict, res.Reason)
	}
	if a.MinLatencyRequests() != 368 {
		t.Fatalf("min latency requests %d", a.MinLatencyRequests())
	}
}

// A regression of the tail alone, the body unchanged (one request in 20
// ten times as long), is no shift of the whole distribution for the rank
// test, but the p99's bounds catch it.
func TestTailRegressionRolledBack(t *testing.T) {
	a := Spec{}.WithDefaults().Analysis
	a.MaxP99Ratio = 1.2
	r := rand.New(rand.NewPCG(10, 11))
	body := func() float64 { return 0.008 * math.Exp(0.2*r.NormFloat64()) }
	s, c := make([]float64, 2000), make([]float64, 600)
	for i := range s {
		s[i] = body()
	}
	for i := range c {
		c[i] = body()
		if i%20 == 0 {
			c[i] *= 10
		}
	}
	res := a.Analyse(VersionMetrics{}, observed(t, s), VersionMetrics{}, observed(t, c), nil, nil)
	if res.Verdict != Fail || !strings.Contains(res.Reason, "p98 at least") {
		t.Fatalf("%s %q %v", res.Verdict, res.Reason, res.Figures)
	}
	t.Log(res.Reason)
}
