package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseRates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"500", "[500]"},
		{"100:500:100", "[100 200 300 400 500]"},
		{"100:450:100", "[100 200 300 400]"},
		{"0.5:1.5:0.5", "[0.5 1 1.5]"},
	} {
		got, err := ParseRates(tc.in)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "-5", "abc", "1:2", "500:100:10", "1:1000000:1"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// FindMax against servers that hold up to a known capacity.
func TestFindMax(t *testing.T) {
	for _, tc := range []struct {
		capacity, start, max float64
		want                 float64 // within 5%
	}{
		{1234, 100, 0, 1234},
		{1234, 5000, 0, 1234},    // the start is already too much: search below
		{1e6, 100, 50000, 50000}, // capped by max
		{80, 100, 0, 80},         // just below the start
		{100, 100, 0, 100},       // exactly the start holds
	} {
		probes := 0
		got, tried, err := FindMax(tc.start, tc.max, 0.05, func(rate float64) (bool, error) {
			probes++
			return rate <= tc.capacity, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got > tc.want || got < 0.95*tc.want {
			t.Errorf("capacity %v from %v: found %v after %v", tc.capacity, tc.start, got, tried)
		}
		if probes > 20 {
			t.Errorf("capacity %v: %d probes, a search needs far fewer", tc.capacity, probes)
		}
	}
}

// A sweep through Bench measures each rate against a real server in
// order, tells Step of each, and reports the highest rate that met its
// objectives; a context ended before it leaves no steps and no error.
func TestBenchCapacitySweep(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	objectives, err := ParseSLO("errors<1%")
	if err != nil {
		t.Fatal(err)
	}
	b := &Bench{
		Target: &HTTP{Client: NewHTTPClient(8, false), Requests: []HTTPRequest{{Method: "GET", URL: srv.URL}}},
		URL:    srv.URL, Protocol: "http",
		Run:      Options{Duration: 300 * time.Millisecond, Objectives: objectives},
		Schedule: func(rate float64) (Schedule, error) { return Constant{QPS: rate}, nil },
	}
	var told []float64
	steps, best, err := b.Capacity(context.Background(), CapacityOptions{Rates: []float64{20, 40}, Objectives: objectives,
		Step: func(r Report) { told = append(told, r.TargetRate) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || len(told) != 2 || told[0] != steps[0].TargetRate || best != steps[1].TargetRate || best < 39 || best > 41 {
		t.Fatalf("steps %d, told %v, best %.1f: want 2 steps told in order, the best at 40/s", len(steps), told, best)
	}
	for _, r := range steps {
		if r.OK == 0 || r.Target != srv.URL {
			t.Fatalf("step at %.0f/s: %d answered, target %q", r.TargetRate, r.OK, r.Target)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if steps, _, err := b.Capacity(ctx, CapacityOptions{Rates: []float64{20}, Objectives: objectives}); err != nil || len(steps) > 1 {
		t.Fatalf("ended context: %d steps, %v", len(steps), err)
	}
}
