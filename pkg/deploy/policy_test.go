package deploy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With weights 5/95 over 10,000 requests, the canary's share is 5% ± 1%.
func TestRouteFollowsWeights(t *testing.T) {
	p := Policy{Weights: map[int64]float64{1: 95, 2: 5}}.Router()
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[int64]int{}
	for range 10000 {
		counts[p.Route("", r.Float64())]++
	}
	if share := float64(counts[2]) / 10000; math.Abs(share-0.05) > 0.01 {
		t.Fatalf("canary share %.3f, want 0.05 ± 0.01 (%v)", share, counts)
	}
	// A version at weight 0 gets nothing: a blue-green standby.
	p = Policy{Weights: map[int64]float64{1: 0, 2: 1}}.Router()
	for range 1000 {
		if v := p.Route("", r.Float64()); v != 2 {
			t.Fatalf("routed to standby version %d", v)
		}
	}
	if v := p.Route("", 0.9999999999999999); v != 2 {
		t.Fatalf("u at the top: %d", v)
	}
}

// Weights at the ends of the float range route as their ratios say: two
// of 1e308 (whose sum overflows) split evenly, as do two subnormal ones
// (whose sum loses precision), and 3e-320 against 1e-320 is 3 to 1.
// Weights that are not finite non-negative numbers are refused.
func TestExtremeWeightsRouteAsDeclared(t *testing.T) {
	for _, tc := range []struct {
		weights map[int64]float64
		share2  float64
	}{
		{map[int64]float64{1: 1e308, 2: 1e308}, 0.5},
		{map[int64]float64{1: math.MaxFloat64, 2: math.MaxFloat64, 3: 0}, 0.5},
		{map[int64]float64{1: 5e-324, 2: 5e-324}, 0.5},
		{map[int64]float64{1: 1e-320, 2: 3e-320}, 0.75},
	} {
		p := Policy{Weights: tc.weights}
		if err := p.Validate(func(int64) bool { return true }); err != nil {
			t.Fatalf("%v: %v", tc.weights, err)
		}
		if got := p.Shares()[2]; math.Abs(got-tc.share2) > 1e-12 {
			t.Errorf("%v: share of version 2 %v, want %v", tc.weights, got, tc.share2)
		}
		r, counts := p.Router(), map[int64]int{}
		for i := range 1000 {
			counts[r.Route("", (float64(i)+0.5)/1000)]++
		}
		if got := float64(counts[2]) / 1000; math.Abs(got-tc.share2) > 0.002 || counts[0] > 0 || counts[3] > 0 {
			t.Errorf("%v: routed %v", tc.weights, counts)
		}
	}
	for _, w := range []float64{math.Inf(1), math.NaN(), -5e-324, math.Inf(-1)} {
		err := Policy{Weights: map[int64]float64{1: 1, 2: w}}.Validate(func(int64) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "version 2 has weight") || !strings.Contains(err.Error(), "finite") {
			t.Errorf("weight %v: %v", w, err)
		}
	}
}

// A/B assignment is sticky per key, and still splits keys by weight.
func TestStickyAssignment(t *testing.T) {
	p := Policy{Weights: map[int64]float64{1: 50, 2: 50}, Sticky: "header:X-User-Id"}.Router()
	r := rand.New(rand.NewPCG(3, 4))
	arms := map[int64]int{}
	for i := range 2000 {
		key := fmt.Sprintf("user-%d", i)
		first := p.Route(key, r.Float64())
		for range 5 {
			if v := p.Route(key, r.Float64()); v != first {
				t.Fatalf("key %s moved from %d to %d", key, first, v)
			}
		}
		arms[first]++
	}
	if math.Abs(float64(arms[1])/2000-0.5) > 0.04 {
		t.Fatalf("arms %v, want about half each", arms)
	}
	if p.StickyHeader() != "X-User-Id" {
		t.Fatal(p.StickyHeader())
	}
	// Routing runs on every request: no allocation.
	if n := testing.AllocsPerRun(100, func() { p.Route("user-7", 0.5) }); n != 0 {
		t.Fatalf("%v allocations per route", n)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	ready := func(v int64) bool { return v <= 2 }
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, "no version"},
		{Policy{Weights: map[int64]float64{1: -1}}, "weight -1"},
		{Policy{Weights: map[int64]float64{1: 0}}, "every version has weight 0"},
		{Policy{Weights: map[int64]float64{3: 1}}, "version 3 is not loaded"},
		{Policy{Weights: map[int64]float64{1: 1}, Sticky: "cookie:x"}, "sticky"},
		{Policy{Weights: map[int64]float64{1: 1}, Shadow: &Shadow{Version: 2, Fraction: 1.5}}, "shadow.fraction"},
		{Policy{Weights: map[int64]float64{1: 1}, Shadow: &Shadow{Version: 7, Fraction: 0.1}}, "shadow.version 7"},
		{Policy{Weights: map[int64]float64{0: 1, 2: 1}}, "version 0: versions are numbered from 1"},
		{Policy{Weights: map[int64]float64{1: 1}, Shadow: &Shadow{Version: 0, Fraction: 0.1}}, "shadow.version 0: versions are numbered from 1"},
	} {
		if err := tc.p.Validate(ready); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	if err := (Policy{Weights: map[int64]float64{1: 0, 2: 1}, Shadow: &Shadow{Version: 1, Fraction: 0.1}}).Validate(ready); err != nil {
		t.Fatal(err)
	}
}

func TestStoreSavesAtomically(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "state")}
	p := Policy{Weights: map[int64]float64{1: 75, 2: 25}, Sticky: "id", Shadow: &Shadow{Version: 2, Fraction: 0.1}}
	if err := s.Save("mlp", p); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("mlp", Weighted(2)); err != nil { // replaced, not appended
		t.Fatal(err)
	}
	if err := s.Save("text-encoder", p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["mlp"].Weights[2] != 1 || got["text-encoder"].Shadow.Fraction != 0.1 {
		t.Fatalf("loaded %+v", got)
	}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
	if err := s.Save("../escape", p); err == nil {
		t.Fatal("a model name escaped the state folder")
	}
	os.WriteFile(filepath.Join(s.Dir, "traffic.broken.json"), []byte("{"), 0o644)
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "traffic.broken.json") {
		t.Fatalf("torn file: %v", err)
	}
	if err := s.Delete("mlp"); err != nil {
		t.Fatal(err)
	}
}
