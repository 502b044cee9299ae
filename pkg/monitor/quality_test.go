package monitor

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/tensor"
)

// scrapeDrift exports mon through the drift collector, as the server
// does, and parses the exposition.
func scrapeDrift(t *testing.T, mon *drift.Monitor, at time.Time) Sample {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(drift.NewCollector(func() []*drift.Monitor { return []*drift.Monitor{mon} }))
	return gather(t, reg, at)
}

// normal returns a [n, 2] tensor named x of standard normal values plus
// shift.
func normal(r *rand.Rand, n int, shift float32) []tensor.Tensor {
	v := make([]float32, 2*n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) + shift
	}
	return []tensor.Tensor{tensor.New("x", []int64{int64(n), 2}, v)}
}

// A real quality monitor's metrics, scraped twice: the sampling rate over
// the window, the alarm, and each test's largest score with its feature,
// the input and the output of one name kept apart.
func TestQualityFromMetrics(t *testing.T) {
	mon, err := drift.New(drift.Options{Model: "m", Version: 3, Sample: 1, Window: time.Hour, Layout: drift.Layout{Batched: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 3))
	t0 := time.Unix(1000, 0)

	mon.Observe("", normal(r, 2000, 0), normal(r, 2000, 0))
	mon.Flush(ctx)
	before := scrapeDrift(t, mon, t0)
	k := Key{Server: "http://127.0.0.1:8000", Model: "m", Version: "3"}
	if q := before.Versions[k].Quality; q == nil || q.Sampled != 1 || q.Compared {
		t.Fatalf("before a baseline: %+v, want 1 sampled and nothing compared", q)
	}
	base := mon.Summary(time.Time{})
	mon.SetBaseline(&base)
	for range 4 {
		mon.Observe("", normal(r, 500, 0), normal(r, 500, 1)) // the output moved by 1 sd
	}
	mon.Flush(ctx)
	now := scrapeDrift(t, mon, t0.Add(2*time.Second))

	q := Between(before, now, 0)[0].Quality
	if q == nil || q.SampleRate != 2 || !q.Compared || !q.Alarm {
		t.Fatalf("quality %+v: want 2 sampled/s, compared, alarmed", q)
	}
	psi, ks := q.Worst[drift.TestPSI], q.Worst[drift.TestKS]
	if psi.Role != drift.Output || psi.Tensor != "x" || psi.Value < drift.PSIAlarm || ks.Role != drift.Output || ks.Value < 0.2 {
		t.Errorf("largest psi %+v and ks %+v: want the output's, past the thresholds", psi, ks)
	}
	// Shifting both logits alike leaves the class alone: chi2 is scored,
	// on the argmax, and small.
	if c := q.Worst[drift.TestChi2]; c.Feature != drift.FeatureArgmax || c.Value > 20 {
		t.Errorf("largest chi2 %+v: want the output's argmax, small", c)
	}
	if _, ok := q.Worst[drift.TestMeanZ]; ok {
		t.Errorf("per-position means of rows of 2: %+v", q.Worst)
	}
}
