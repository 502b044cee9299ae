package loadgen

import (
	"bytes"
	"strings"
	"testing"
)

// A failed request keeps what the server said, from either protocol's
// error shape or a plain body, on one bounded line.
func TestServerMessage(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"error": "model \"x\" generates text: use /v1/completions"}`, `model "x" generates text: use /v1/completions`},
		{`{"error": {"message": "max_tokens too large", "type": "invalid_request_error"}}`, "max_tokens too large"},
		{"upstream\n  connect error", "upstream connect error"},
		{"", ""},
		{strings.Repeat("é", 400), strings.Repeat("é", 150) + "…"},
	} {
		if got := serverMessage(c.body); got != c.want {
			t.Errorf("serverMessage(%.40q) = %q, want %q", c.body, got, c.want)
		}
	}
	var r Result
	r.FailStatus(400, `{"error":"bad shape"}`)
	if r.Kind != "status 400" || errorMessage(r.Err) != "bad shape" {
		t.Fatalf("kind %q, message %q", r.Kind, errorMessage(r.Err))
	}
}

// The search's length is known before it starts: never more probes
// than FindMaxProbes says, for a server whose capacity is anywhere from
// a hundredth of the start to past the max, at 1%, 5% and 10%. It said
// 4 probes of bisection at 5% where a capacity just above the last
// doubling takes 5 (a search of 10 probes announced as at most 9).
func TestFindMaxProbesBoundsTheSearch(t *testing.T) {
	for _, tolerance := range []float64{0.01, 0.05, 0.1} {
		for _, c := range []struct{ start, max float64 }{{1000, 16000}, {100, 6400}, {100, 150}, {1000, 1000}, {100, 100000}, {100, 0}} {
			bisect, most := FindMaxProbes(c.start, c.max, tolerance)
			for capacity := c.start / 100; capacity < max(c.max, 5000)*1.5; capacity *= 1.003 {
				_, tried, err := FindMax(c.start, c.max, tolerance, func(rate float64) (bool, error) { return rate <= capacity, nil })
				if err != nil {
					t.Fatal(err)
				}
				doublings := 0
				for i := 1; i < len(tried) && tried[i] > tried[i-1]; i++ {
					doublings++
				}
				if most > 0 && len(tried) > most || tried[0] <= capacity && len(tried) > doublings+1+bisect {
					t.Fatalf("tolerance %v, %+v, capacity %.0f: %d probes %v, said at most %d (bisect %d)", tolerance, c, capacity, len(tried), tried, most, bisect)
				}
			}
		}
	}
	if bisect, most := FindMaxProbes(1000, 16000, 0.05); bisect != 5 || most != 12 {
		t.Fatalf("from 1000/s to 16000/s at 5%%: bisect %d, at most %d; want 5 and 12 (5 doublings, or 7 probes below a failing start, then 5)", bisect, most)
	}
}

// bench compare calls a change better or worse only beyond the runs'
// own noise, and says when a change is within it.
func TestCompareNoise(t *testing.T) {
	timeline := func(p99s ...float64) []SecondReport {
		var out []SecondReport
		for i, v := range p99s {
			out = append(out, SecondReport{Second: i, Requests: 100, P50: v / 2, P99: v})
		}
		return out
	}
	noisyA := Report{AchievedRate: 100, Latency: Percentiles{P99: 10}, Timeline: timeline(6, 14, 8, 12, 10, 5, 15)}
	noisyB := Report{AchievedRate: 100, Latency: Percentiles{P99: 11}, Timeline: timeline(7, 15, 9, 13, 11, 6, 16)}
	steadyB := Report{AchievedRate: 100, Latency: Percentiles{P99: 20}, Timeline: timeline(20, 20.2, 19.8, 20.1, 19.9, 20, 20)}
	steadyA := Report{AchievedRate: 100, Latency: Percentiles{P99: 10}, Timeline: timeline(10, 10.1, 9.9, 10, 10.2, 9.8, 10)}
	p99 := func(d []Delta) Delta {
		for _, x := range d {
			if x.Metric == "p99 ms" {
				return x
			}
		}
		t.Fatal("no p99 row")
		return Delta{}
	}
	if n := p99(Compare(noisyA, noisyB)).Noise; n < 0.2 {
		t.Fatalf("noise of a wandering p99: %.3f, want over 20%%", n)
	}
	var b bytes.Buffer
	if err := WriteComparison(&b, "a", "b", Compare(noisyA, noisyB)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "within noise") || strings.Contains(b.String(), "worse") {
		t.Fatalf("a 10%% change inside the noise:\n%s", b.String())
	}
	b.Reset()
	if err := WriteComparison(&b, "a", "b", Compare(steadyA, steadyB)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "+100.0% worse") {
		t.Fatalf("a doubled p99 on steady runs:\n%s", b.String())
	}
	if n := p99(Compare(Report{Latency: Percentiles{P99: 1}}, steadyB)).Noise; n != 0 {
		t.Fatalf("noise without a timeline: %v, want 0 (unknown)", n)
	}
}
