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
// than FindMaxProbes says, four of bisection at 5%.
func TestFindMaxProbesBoundsTheSearch(t *testing.T) {
	for _, c := range []struct{ start, max, capacity float64 }{
		{100, 6400, 3000}, {100, 6400, 50}, {100, 6400, 10000}, {100, 150, 120}, {100, 0, 3000},
	} {
		bisect, most := FindMaxProbes(c.start, c.max, 0.05)
		_, tried, err := FindMax(c.start, c.max, 0.05, func(rate float64) (bool, error) { return rate <= c.capacity, nil })
		if err != nil || bisect != 4 {
			t.Fatalf("%+v: %v, bisect %d", c, err, bisect)
		}
		doublings := 0
		for i := 1; i < len(tried) && tried[i] > tried[i-1]; i++ {
			doublings++
		}
		if tried[0] > c.capacity {
			if len(tried) > 1+bisect+6 {
				t.Errorf("%+v: %d probes below a failing start %v", c, len(tried), tried)
			}
			continue
		}
		if most > 0 && len(tried) > most || len(tried) > doublings+1+bisect {
			t.Errorf("%+v: %d probes %v, bound %d (bisect %d)", c, len(tried), tried, most, bisect)
		}
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
