package deploy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/window"
)

func TestSpecValidateNamesTheField(t *testing.T) {
	good := Spec{Model: "m", Stable: 1, Candidate: 2}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Model = "" }, "model: empty"},
		{func(s *Spec) { s.Candidate = 1 }, "two different versions"},
		{func(s *Spec) { s.Strategy = "linear" }, `strategy "linear"`},
		{func(s *Spec) { s.Steps = []float64{50, 25} }, "steps [50 25]"},
		{func(s *Spec) { s.Steps = []float64{150} }, "steps [150]"},
		{func(s *Spec) { s.Interval = Duration(time.Millisecond) }, "interval 1ms"},
		{func(s *Spec) { s.Strategy, s.ShadowFraction = Mirror, 0 }, "shadow_fraction 0"},
		{func(s *Spec) { s.Analysis.MinSuccessRate = 2 }, "analysis"},
		{func(s *Spec) { s.Analysis.Confidence = 1 }, "analysis.confidence 1"},
	} {
		s := good
		s.Steps = append([]float64(nil), good.Steps...)
		tc.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", s, err, tc.want)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("duration \"soon\": %v", err)
	}
	if err := json.Unmarshal([]byte(`30`), &d); err == nil || !strings.Contains(err.Error(), "30s") {
		t.Errorf("duration 30: %v", err)
	}
}

func TestSpecPolicies(t *testing.T) {
	s := Spec{Model: "m", Stable: 1, Candidate: 2, Steps: []float64{5, 100}}
	if p := s.Policy(0); p.Weights[1] != 95 || p.Weights[2] != 5 {
		t.Errorf("canary at 5%%: %+v", p)
	}
	if p := s.Policy(1); len(p.Weights) != 1 || p.Weights[2] != 1 {
		t.Errorf("canary at 100%%: %+v", p)
	}
	s.Strategy, s.ShadowFraction = Mirror, 0.25
	if p := s.Policy(0); len(p.Weights) != 1 || p.Weights[1] != 1 || p.Shadow == nil || p.Shadow.Version != 2 || p.Shadow.Fraction != 0.25 {
		t.Errorf("shadow: %+v", p)
	}
	if d := s.Describe(1); !strings.Contains(d, "version 2 mirrors 25% of requests") || !strings.Contains(d, "version 1 serves them all") {
		t.Errorf("a shadow step described as %q", d)
	}
	if p := (State{Spec: s}).Percent(); p != 0 {
		t.Errorf("a shadow serves %g%%", p)
	}
}

// metrics returns cumulative figures: n requests, errs of them failed, all
// with latency lat seconds (buckets 1ms, 10ms, 100ms, 1s).
func metrics(n, errs float64, lat float64) VersionMetrics {
	h := window.Histogram{Count: uint64(n), Sum: n * lat}
	for _, ub := range []float64{0.001, 0.01, 0.1, 1} {
		c := uint64(0)
		if lat <= ub {
			c = uint64(n)
		}
		h.Buckets = append(h.Buckets, window.Bucket{UpperBound: ub, Count: c})
	}
	return VersionMetrics{Requests: n, Errors: errs, Latency: h}
}

func TestAnalyseVerdicts(t *testing.T) {
	a := Spec{}.WithDefaults().Analysis
	a.MaxP99Ratio = 2
	zero := VersionMetrics{}
	for _, tc := range []struct {
		name         string
		stable, cand VersionMetrics
		verdict      string
		reason       string
	}{
		{"too few requests", metrics(100, 0, 0.005), metrics(5, 0, 0.005), Inconclusive, "5 candidate requests, want at least 20"},
		{"errors", metrics(100, 0, 0.005), metrics(100, 5, 0.005), Fail, "success rate 95.00% below 99.00%"},
		{"slow", metrics(100, 0, 0.005), metrics(100, 0, 0.05), Fail, "p99"},
		{"good", metrics(400, 0, 0.005), metrics(400, 0, 0.005), Pass, "within every bound"},
		{"too few for a p99", metrics(400, 0, 0.005), metrics(100, 0, 0.005), Inconclusive, "want at least 368 each"},
		{"no stable traffic", zero, metrics(100, 0, 0.05), Pass, "within every bound"},
	} {
		r := a.Analyse(zero, tc.stable, zero, tc.cand, nil, nil)
		if r.Verdict != tc.verdict || !strings.Contains(r.Reason, tc.reason) {
			t.Errorf("%s: %s %q, want %s %q (%v)", tc.name, r.Verdict, r.Reason, tc.verdict, tc.reason, r.Figures)
		}
	}

	// Shadow drift is judged above the noise floor: primary against itself.
	a.MaxDrift = 0.01
	drift := func(shadow, noise float64) Result {
		end := DriftMetrics{Compared: 50, ShadowSumAbs: 50 * shadow, NoiseCompared: 50, NoiseSumAbs: 50 * noise}
		return a.Analyse(zero, metrics(100, 0, 0.005), zero, zero, &DriftMetrics{}, &end)
	}
	if r := drift(0.02, 0.015); r.Verdict != Pass {
		t.Errorf("drift 0.02 over a floor of 0.015: %s %s", r.Verdict, r.Reason)
	}
	if r := drift(0.05, 0.015); r.Verdict != Fail || !strings.Contains(r.Reason, "shadow drift") {
		t.Errorf("drift 0.05 over a floor of 0.015: %s %s", r.Verdict, r.Reason)
	}
}

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]float64{"5%": 5, " 25 ": 25, "100%": 100, "0.5%": 0.5} {
		if got, err := ParsePercent(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0%", "101%", "five", "-5%"} {
		if _, err := ParsePercent(in); err == nil || !strings.Contains(err.Error(), "percentage") {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestLastAnalysis(t *testing.T) {
	s := State{History: []Event{{Kind: "started"}}}
	if _, ok := s.LastAnalysis(); ok {
		t.Fatal("an analysis before any")
	}
	s.History = append(s.History, Event{Kind: Pass, Step: 0}, Event{Kind: "step", Step: 1}, Event{Kind: Inconclusive, Step: 1}, Event{Kind: "paused"})
	if e, ok := s.LastAnalysis(); !ok || e.Kind != Inconclusive || e.Step != 1 {
		t.Fatalf("last analysis %+v %v, want the inconclusive one of step 2", e, ok)
	}
}

// The state and its events count steps from 1 in JSON, as people do, and
// read back as the index they were.
func TestStepsCountFromOneInJSON(t *testing.T) {
	s := State{Spec: Spec{Steps: []float64{10, 50, 100}}, Phase: Progressing, Step: 1,
		History: []Event{{Kind: "step", Step: 0, Percent: 10}, {Kind: "step", Step: 1, Percent: 50}}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Step    int `json:"step"`
		History []struct {
			Step int `json:"step"`
		} `json:"history"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.Step != 2 || raw.History[0].Step != 1 || raw.History[1].Step != 2 {
		t.Fatalf("%v: JSON steps %+v, want 2 with history 1 and 2:\n%s", err, raw, b)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil || back.Step != 1 || back.History[0].Step != 0 || back.History[1].Step != 1 || back.Percent() != 50 {
		t.Fatalf("%v: read back at step index %d, history %+v", err, back.Step, back.History)
	}
}

// The candidate's share follows the rollout's end: all of the traffic once
// promoted, none once rolled back or aborted.
func TestPercentAfterTheEnd(t *testing.T) {
	spec := Spec{Model: "m", Strategy: Canary, Stable: 1, Candidate: 2, Steps: []float64{10, 50}}
	for phase, want := range map[string]float64{Progressing: 50, Promoted: 100, RolledBack: 0, Aborted: 0} {
		if got := (State{Spec: spec, Step: 1, Phase: phase}).Percent(); got != want {
			t.Errorf("%s at step 2: %g%%, want %g%%", phase, got, want)
		}
	}
}

// A policy reads in logs as each version's share, in percent.
func TestPolicyString(t *testing.T) {
	for _, c := range []struct {
		w    map[int64]float64
		want string
	}{{map[int64]float64{2: 1}, "2=100%"}, {map[int64]float64{2: 5, 1: 95}, "1=95% 2=5%"}, {map[int64]float64{1: 0}, "none"}, {map[int64]float64{1: 1, 2: 2}, "1=33.33% 2=66.67%"}} {
		if got := (Policy{Weights: c.w}).String(); got != c.want {
			t.Errorf("%v: %q, want %q", c.w, got, c.want)
		}
	}
}
