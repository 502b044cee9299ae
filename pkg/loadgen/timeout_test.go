package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Half the requests are never answered and time out at 200ms: they count
// as errors and, in the latency distribution, at no less than their
// timeout, so the run misses p99<50ms and is not called sustained,
// however fast the other half is.
func TestTimeoutsCountInLatency(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			<-r.Context().Done() // never answered: the client gives up
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	const timeout = 200 * time.Millisecond
	target := &HTTP{Client: NewHTTPClient(8, false), Requests: []HTTPRequest{{Method: "GET", URL: srv.URL}}}
	sum, err := Run(context.Background(), target, Options{Concurrency: 4, Requests: 40, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 20 || sum.Errors[KindTimeout] != 20 {
		t.Fatalf("%d ok, errors %v: want 20 answered and 20 timed out", sum.OK, sum.Errors)
	}
	r := NewReport(sum, srv.URL, "", "http")
	if r.Latency.P99 < float64(timeout/time.Millisecond) || r.Latency.P50 > r.Latency.P99 {
		t.Fatalf("latency p50 %.3fms p99 %.3fms: the timed-out half must sit at %v or more", r.Latency.P50, r.Latency.P99, timeout)
	}
	slo, err := ParseSLO("p99<50ms")
	if err != nil {
		t.Fatal(err)
	}
	if v := r.Violations(slo); len(v) != 1 {
		t.Fatalf("p99<50ms with half the requests timed out: violations %v", v)
	}
	r.TargetRate = r.AchievedRate // the rate held; the latency did not
	if Sustained(r, slo) {
		t.Fatal("a run with half its requests timed out was called sustained under p99<50ms")
	}
}

// Inter-token latency has one definition: a chunk of four tokens 20ms
// after the one before stands for four intervals of 5ms, in the report's
// distribution and in goodput alike, so itl<10ms holds for both and
// itl<4ms for neither.
func TestInterTokenLatencyHasOneDefinition(t *testing.T) {
	gen := func() *Gen {
		return &Gen{TTFT: 20 * time.Millisecond, E2E: 80 * time.Millisecond, Tokens: 13, Chunks: 4,
			Gaps: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}}
	}
	for _, tc := range []struct {
		slo  string
		good bool
	}{{"itl<10ms", true}, {"itl<4ms", false}} {
		slo, err := ParseSLO(tc.slo)
		if err != nil {
			t.Fatal(err)
		}
		rec := NewRecorder()
		rec.Objectives = slo
		for range 10 {
			res := &Result{Intended: time.Now(), Start: time.Now(), Gen: gen()}
			res.End = res.Start.Add(80 * time.Millisecond)
			res.Finish()
			rec.Record(res)
		}
		g := newGenReport(rec.Gen, 1)
		if g.ITL.P99 < 4.9 || g.ITL.P99 > 5.1 {
			t.Fatalf("itl p99 %.3fms, want 5ms: 20ms over the 4 tokens of each later chunk", g.ITL.P99)
		}
		met := Report{OK: rec.OK, Generation: g}.Violations(slo) == nil
		if met != tc.good || (rec.Gen.Good == 10) != tc.good {
			t.Fatalf("%s: the run's verdict %v and goodput %d of 10 disagree (want %v)", tc.slo, met, rec.Gen.Good, tc.good)
		}
	}
}
