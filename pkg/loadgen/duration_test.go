package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// An open loop against a server that cannot keep up stops at its
// duration: it sends nothing after the end, waits at most its timeout for
// the requests in flight, and reports the requests it never sent. (The
// server answers 20 requests a second; the schedule asks 200 a second for
// a second, two in flight at most: sending them all would take 10 s.)
func TestOpenLoopStopsAtItsDuration(t *testing.T) {
	var one sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		one.Lock()
		defer one.Unlock()
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	target, err := NewHTTP1([]HTTPRequest{{Method: "GET", URL: srv.URL + "/"}}, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	const duration, timeout = time.Second, 300 * time.Millisecond
	start := time.Now()
	sum, err := Run(context.Background(), target, Options{Schedule: Constant{QPS: 200}, Concurrency: 2, Duration: duration, Timeout: timeout})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 4*time.Second {
		t.Errorf("the run took %s; want about its duration %s plus at most its timeout %s", took, duration, timeout)
	}
	if sum.Unsent < 100 {
		t.Errorf("%d unsent, want most of the 200 the schedule asked for", sum.Unsent)
	}
	if n := sum.Count() + sum.Unsent; n < 195 || n > 202 {
		t.Errorf("%d recorded and %d unsent, want the schedule's 200 between them", sum.Count(), sum.Unsent)
	}
	end := start.Add(duration)
	if sum.Last.After(end.Add(timeout + 200*time.Millisecond)) {
		t.Errorf("the last answer came %s after the end", sum.Last.Sub(end))
	}
}
