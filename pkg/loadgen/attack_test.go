package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
)

// A server stalled for 1 s under an open-loop 200 requests a second,
// with at most 10 requests in flight: the sends meant for the stall fall
// behind and go out after it, as a closed-loop generator's would. Measured
// from when each was meant to be sent, their latency averages about
// 500 ms (the wait its users would see); measured from the actual send, as
// a generator that ignores coordinated omission does, they look fast.
func TestCoordinatedOmissionIsCorrected(t *testing.T) {
	var stallFrom, stallTo atomic.Int64
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UnixNano()
		if now >= stallFrom.Load() && now < stallTo.Load() {
			<-stall
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	start := time.Now()
	stallFrom.Store(start.Add(time.Second).UnixNano())
	stallTo.Store(start.Add(2 * time.Second).UnixNano())
	time.AfterFunc(2*time.Second, func() { close(stall) })

	target := &HTTP{Client: NewHTTPClient(64, false), Requests: []HTTPRequest{{Method: "GET", URL: srv.URL}}}
	var during, corrected, service atomic.Int64
	probe := targetFunc(func(ctx context.Context, r *Result) {
		target.Do(ctx, r)
		r.Finish()
		if at := r.Intended.UnixNano(); at >= stallFrom.Load() && at < stallTo.Load() {
			during.Add(1)
			corrected.Add(int64(r.Phases.Get(profile.Total)))
			service.Add(int64(r.Service()))
		}
	})
	// Two seconds after the stall drain its backlog, on a slow machine too;
	// what a starved machine still could not send by the end is unsent,
	// never sent late, and counts with the answered.
	// 200 a second, not more, so that a machine busy with other tests
	// still sends on time outside the stall.
	sum, err := Run(context.Background(), probe, Options{Schedule: Constant{QPS: 200}, Duration: 4 * time.Second, Concurrency: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK+sum.Unsent != 800 || sum.Unsent > 40 || len(sum.Errors) > 0 {
		t.Fatalf("%d answered, %d unsent, errors %v: want 800 between them, few unsent", sum.OK, sum.Unsent, sum.Errors)
	}
	n := max(during.Load(), 1)
	mean, meanService := time.Duration(corrected.Load()/n), time.Duration(service.Load()/n)
	// About 500ms, plus the time to drain the backlog after the stall
	// (longer on a slow or instrumented machine); never less.
	if during.Load() != 200 || mean < 450*time.Millisecond || mean > time.Second {
		t.Fatalf("%d requests meant for the stall, mean latency %v: want 200 at about 500ms", during.Load(), mean)
	}
	if meanService > mean/3 {
		t.Fatalf("uncorrected mean %v: the stall's sends were not held back, the test shows nothing", meanService)
	}
	if sum.Late < 170 {
		t.Fatalf("%d late sends, want the ~190 of the stall's sends past the 10 in flight", sum.Late)
	}
	// The run's mean carries the stall: a quarter of the requests near 500ms.
	if m := time.Duration(sum.Total.Mean() * float64(time.Microsecond)); m < 80*time.Millisecond {
		t.Fatalf("run mean %v: the stall was omitted", m)
	}
	if p99 := time.Duration(sum.Total.ValueAtQuantile(99)) * time.Microsecond; p99 < 900*time.Millisecond {
		t.Fatalf("p99 %v, want near the 1s stall", p99)
	}
	if sum.TargetRate < 190 || sum.TargetRate > 210 {
		t.Fatalf("target rate %.0f", sum.TargetRate)
	}
}

type targetFunc func(context.Context, *Result)

func (f targetFunc) Do(ctx context.Context, r *Result) { f(ctx, r) }

// A closed loop keeps Concurrency requests in flight and stops at the
// request count; phases add up to the total for every result.
func TestClosedLoopAndBreakdownArithmetic(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server-Timing", "queue;dur=0.1, preprocess;dur=0.05, infer;dur=0.2, postprocess;dur=0.01, total;dur=0.4")
		time.Sleep(time.Millisecond)
	}))
	defer srv.Close()
	var inFlight, most atomic.Int64
	target := &HTTP{Client: NewHTTPClient(8, false), Requests: []HTTPRequest{{Method: "POST", URL: srv.URL, Body: []byte("x")}}}
	probe := targetFunc(func(ctx context.Context, r *Result) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		target.Do(ctx, r)
		inFlight.Add(-1)
		r.Finish()
		var sum time.Duration
		for _, p := range profile.BudgetPhases {
			sum += r.Phases.Get(p)
		}
		if sum != r.Phases.Get(profile.Total) {
			t.Errorf("phases add up to %v, total %v", sum, r.Phases.Get(profile.Total))
		}
		if r.Phases.Get(profile.Infer) != 200*time.Microsecond || !r.ServerReported {
			t.Errorf("server phases not taken: infer %v", r.Phases.Get(profile.Infer))
		}
	})
	sum, err := Run(context.Background(), probe, Options{Concurrency: 8, Requests: 400, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count() != 400 || most.Load() != 8 || sum.Open {
		t.Fatalf("recorded %d, most in flight %d", sum.Count(), most.Load())
	}
	if got := sum.PhaseSum[profile.Infer]; got != 400*200*time.Microsecond {
		t.Fatalf("infer sum %v", got)
	}
}

func TestErrorKinds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	url := srv.URL
	target := &HTTP{Client: NewHTTPClient(4, false), Requests: []HTTPRequest{{Method: "GET", URL: url}}}
	sum, _ := Run(context.Background(), target, Options{Concurrency: 2, Requests: 10})
	if sum.Errors["status 503"] != 10 {
		t.Fatalf("errors %v", sum.Errors)
	}
	slow := &HTTP{Client: NewHTTPClient(4, false), Requests: []HTTPRequest{{Method: "GET", URL: url + "/slow"}}}
	sum, _ = Run(context.Background(), slow, Options{Concurrency: 2, Requests: 4, Timeout: 20 * time.Millisecond})
	if sum.Errors[KindTimeout] != 4 {
		t.Fatalf("errors %v", sum.Errors)
	}
	srv.Close()
	sum, _ = Run(context.Background(), target, Options{Concurrency: 1, Requests: 3})
	if sum.Errors[KindRefused] != 3 {
		t.Fatalf("errors against a closed port %v", sum.Errors)
	}
}
