package loadgen

import (
	"math"
	"testing"
	"time"
)

// Means per request from statistics deltas, and network as the remainder
// of the mean total.
func TestApplyServerStats(t *testing.T) {
	r := Report{OK: 100, Latency: Percentiles{Mean: 2}} // 2 ms mean total
	for _, p := range []string{"delay", "connect", "write", "queue", "preprocess", "infer", "postprocess", "network"} {
		ph := PhaseReport{Phase: p}
		if p == "write" {
			ph.Mean = 0.1
		}
		r.Phases = append(r.Phases, ph)
	}
	before := ServerStats{Count: 50, Queue: time.Second, Infer: time.Second}
	after := ServerStats{Count: 150, Queue: time.Second + 20*time.Millisecond, Input: 10 * time.Millisecond,
		Infer: time.Second + 100*time.Millisecond, Output: 5 * time.Millisecond}
	if !r.ApplyServerStats(after.Minus(before)) {
		t.Fatal("not applied")
	}
	want := map[string]float64{"queue": 0.2, "preprocess": 0.1, "infer": 1.0, "postprocess": 0.05, "network": 2 - 0.1 - 0.2 - 0.1 - 1.0 - 0.05}
	var shares float64
	for _, p := range r.Phases {
		shares += p.Share
		if w, ok := want[p.Phase]; ok && math.Abs(p.Mean-w) > 1e-9 {
			t.Errorf("%s mean %v, want %v", p.Phase, p.Mean, w)
		}
	}
	if math.Abs(shares-1) > 1e-9 {
		t.Fatalf("shares %v", shares)
	}
	if (&Report{OK: 1}).ApplyServerStats(ServerStats{}) {
		t.Fatal("applied with no requests counted")
	}
}
