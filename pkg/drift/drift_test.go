package drift

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

func TestStatistics(t *testing.T) {
	// PSI of (0.5, 0.5) against (0.25, 0.75): 0.25·ln 2 + 0.25·ln(2/3)... by hand:
	// (0.25−0.5)·ln(0.25/0.5) + (0.75−0.5)·ln(0.75/0.5) = 0.1733 + 0.1014.
	if got := PSI([]float64{0.5, 0.5}, []float64{0.25, 0.75}); math.Abs(got-0.27465) > 1e-4 {
		t.Errorf("PSI = %v, want 0.27465", got)
	}
	if got := PSI([]float64{0.2, 0.8}, []float64{0.2, 0.8}); got != 0 {
		t.Errorf("PSI of equal shares = %v, want 0", got)
	}
	// KS: D = 0.1 between two samples of 1,000: λ = (√500+0.12+0.11/√500)·0.1
	// = 2.2478, Q_KS(λ) = 2·Σ(−1)^(k−1)·exp(−2k²λ²) ≈ 8.2e-5.
	if p := KSPValue(0.1, 1000, 1000); p < 7e-5 || p > 9.5e-5 {
		t.Errorf("KS p-value of D=0.1, n=m=1000: %v, want about 8.2e-5", p)
	}
	if p := KSPValue(0.01, 1000, 1000); p < 0.999 {
		t.Errorf("KS p-value of a tiny D: %v, want about 1", p)
	}
	// Chi-squared of [[10, 20], [20, 10]]: expected 15 everywhere, statistic
	// 4·25/15 = 6.667, 1 degree of freedom, p = 0.00982.
	stat, df, p := Chi2([]float64{10, 20}, []float64{20, 10})
	if math.Abs(stat-6.6667) > 1e-3 || df != 1 || math.Abs(p-0.00982) > 1e-4 {
		t.Errorf("Chi2 = %v, %d, %v; want 6.667, 1, 0.00982", stat, df, p)
	}
	if js := JSDistance([]float64{1, 0}, []float64{0, 1}); math.Abs(js-1) > 1e-12 {
		t.Errorf("JS distance of disjoint distributions = %v, want 1", js)
	}
	if js := JSDistance([]float64{3, 1}, []float64{6, 2}); js != 0 {
		t.Errorf("JS distance of equal distributions = %v, want 0", js)
	}
}

// rows returns a [n, 4] FP32 tensor of standard normal values, feature 3
// shifted by shift.
func rows(r *rand.Rand, n int, shift float32) tensor.Tensor { return normalRows(r, n, 4, 3, shift) }

// normalRows returns a [n, width] FP32 tensor x of standard normal values,
// position at shifted by shift.
func normalRows(r *rand.Rand, n, width, at int, shift float32) tensor.Tensor {
	v := make([]float32, n*width)
	for i := range v {
		v[i] = float32(r.NormFloat64())
		if i%width == at {
			v[i] += shift
		}
	}
	return tensor.New("x", []int64{int64(n), int64(width)}, v)
}

// TestFalseAlarms compares 200 windows of 1,000 rows from the baseline's
// own distribution with it: at DefaultAlpha, about one window in a
// thousand may alarm; more than 2 in 200 is a broken test.
func TestFalseAlarms(t *testing.T) {
	m, err := New(Options{Model: "x", Version: 1, Sample: 1, Layout: Layout{Batched: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(7, 7))
	ctx := context.Background()
	m.Observe("", []tensor.Tensor{rows(r, 5000, 0)}, nil)
	m.Flush(ctx)
	base := m.Summary(m.Quality().Last.Start)
	m.SetBaseline(&base)
	alarms := 0
	for range 200 {
		m.Observe("", []tensor.Tensor{rows(r, 1000, 0)}, nil)
		m.Flush(ctx)
		if m.Quality().Drift.Alarm() {
			alarms++
		}
	}
	t.Logf("%d of 200 windows alarmed without drift", alarms)
	if alarms > 2 {
		t.Errorf("%d of 200 windows alarmed without drift", alarms)
	}
	m.Observe("", []tensor.Tensor{rows(r, 1000, 0.5)}, nil)
	m.Flush(ctx)
	if d := m.Quality().Drift.Drifted; len(d) != 1 || d[0] != "input/x/3" {
		t.Errorf("feature 3 shifted by 0.5 sd: drifted %v", d)
	}
}

// The samples kept for review leave out dropped inputs and hash hashed
// ones; outputs are kept as they are.
func TestSamplesRedacted(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Options{Model: "m", Version: 3, Sample: 1, Samples: SampleOptions{Dir: dir, Drop: []string{"secret"}, Hash: []string{"email"}}})
	if err != nil {
		t.Fatal(err)
	}
	in := []tensor.Tensor{
		tensor.New("secret", []int64{1, 2}, []float32{1, 2}),
		tensor.New("email", []int64{1, 2}, []int64{5, 6}),
		tensor.New("plain", []int64{1, 2}, []int32{7, 8}),
	}
	out := []tensor.Tensor{tensor.New("y", []int64{1, 2}, []float32{0.25, float32(math.NaN())})}
	m.Observe("req-1", in, out)
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	recs, err := ReadSamples(dir, 0)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ReadSamples: %v, %d records", err, len(recs))
	}
	rec := recs[0]
	if rec.ID != "req-1" || rec.Model != "m" || rec.Version != 3 || len(rec.Inputs) != 2 {
		t.Fatalf("record %+v", rec)
	}
	if e := rec.Inputs[0]; e.Name != "email" || len(e.SHA256) != 64 || e.Data != nil {
		t.Errorf("hashed input %+v", e)
	}
	if p := rec.Inputs[1]; p.Name != "plain" || len(p.Data) != 2 || p.Data[1] != 8.0 {
		t.Errorf("plain input %+v", p)
	}
	if y := rec.Outputs[0]; y.Data[0] != 0.25 || y.Data[1] != "NaN" {
		t.Errorf("output %+v", y)
	}
	data, _ := os.ReadFile(must(SampleFiles(dir))[0])
	if strings.Contains(string(data), "secret") {
		t.Errorf("the dropped input is in the file:\n%s", data)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Bad options are refused by name.
func TestOptionsErrors(t *testing.T) {
	for _, sample := range []float64{0, -1, 1.5, math.NaN()} {
		if _, err := New(Options{Sample: sample}); err == nil || !strings.Contains(err.Error(), "monitor.sample") {
			t.Errorf("sample %v: %v", sample, err)
		}
	}
	if _, err := ParseSummary([]byte(`{"tensors":[{"name":"x","role":"middle"}]}`)); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("bad role: %v", err)
	}
}
