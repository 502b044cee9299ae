package drift

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/tensor"
)

// wide returns a [n, 64] FP32 tensor of standard normal values, position
// 17 shifted by shift: too wide for the default MaxFeatures, so it is
// summarised.
func wide(r *rand.Rand, n int, shift float32) tensor.Tensor { return normalRows(r, n, 64, 17, shift) }

// A shift of 0.5 standard deviations in one position of 64 hardly moves a
// row's norm or mean, but moves that position's mean: the per-position
// means flag it, at the position that moved. Unshifted windows raise no
// more alarms than the false-alarm rate allows.
func TestPositionMeans(t *testing.T) {
	m, err := New(Options{Model: "x", Version: 1, Sample: 1, Layout: Layout{Batched: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(21, 21))
	ctx := context.Background()
	m.Observe("", []tensor.Tensor{wide(r, 5000, 0)}, nil)
	m.Flush(ctx)
	base := m.Summary(m.Quality().Last.Start)
	ts, _ := base.Tensor(Input, "x")
	if p := ts.Positions; p == nil || p.Width != 64 || len(p.Mean) != 64 || p.Count[17] != 5000 {
		t.Fatalf("baseline positions %+v: want 64 means of 5,000 values", p)
	}
	if _, ok := ts.Feature("0"); ok {
		t.Fatalf("a 64-wide row followed position by position past MaxFeatures")
	}
	m.SetBaseline(&base)
	alarms := 0
	for range 100 {
		m.Observe("", []tensor.Tensor{wide(r, 1000, 0)}, nil)
		m.Flush(ctx)
		if m.Quality().Drift.Alarm() {
			alarms++
		}
	}
	t.Logf("%d of 100 windows alarmed without drift", alarms)
	if alarms > 1 {
		t.Errorf("%d of 100 windows alarmed without drift", alarms)
	}
	m.Observe("", []tensor.Tensor{wide(r, 1000, 0.5)}, nil)
	m.Flush(ctx)
	rep := m.Quality().Drift
	if !slices.Contains(rep.Drifted, "input/x/"+FeaturePositionMean) {
		t.Fatalf("position 17 shifted by 0.5 sd: drifted %v", rep.Drifted)
	}
	for _, s := range rep.Scores {
		if s.Test == TestMeanZ && (s.Position == nil || *s.Position != 17 || s.Value < 5) {
			t.Errorf("score %+v: want position 17 with z above 5", s)
		}
	}

	// The summary goes through a baseline file and back.
	path := t.TempDir() + "/baseline.json"
	if err := base.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSummary(path)
	if err != nil {
		t.Fatal(err)
	}
	if bt, _ := back.Tensor(Input, "x"); bt.Positions == nil || bt.Positions.Mean[17] != ts.Positions.Mean[17] {
		t.Errorf("positions lost in the file: %+v", bt.Positions)
	}
	bad := `{"tensors":[{"name":"x","role":"input","positions":{"width":4,"count":[1],"mean":[0],"std":[0]}}]}`
	if _, err := ParseSummary([]byte(bad)); err == nil || !strings.Contains(err.Error(), "positions") {
		t.Errorf("positions of the wrong length: %v", err)
	}
}

// An input and an output of the same name have drift scores of their own:
// the role label keeps their series apart, and the scrape succeeds.
func TestDriftScoresByRole(t *testing.T) {
	m, err := New(Options{Model: "same", Version: 1, Sample: 1, Layout: Layout{Batched: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	x := func() []tensor.Tensor { return []tensor.Tensor{rows(r, 500, 0)} }
	m.Observe("", x(), x())
	m.Flush(ctx)
	base := m.Summary(m.Quality().Last.Start)
	m.SetBaseline(&base)
	m.Observe("", x(), x())
	m.Flush(ctx)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() []*Monitor { return []*Monitor{m} }))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	roles := map[string]int{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			if f.GetName() != "infer_drift_score" {
				continue
			}
			for _, l := range metric.GetLabel() {
				if l.GetName() == "role" {
					roles[l.GetValue()]++
				}
			}
		}
	}
	// 4 features × 2 tests each; the output's argmax class 3 tests more.
	if roles[Input] != 8 || roles[Output] != 11 {
		t.Errorf("drift score series by role: %v, want 8 inputs and 11 outputs", roles)
	}
}
