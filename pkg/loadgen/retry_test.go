package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// server answers 503 to the hits fail says to, 200 to the rest, and
// counts them.
func server(t *testing.T, fail func(hit int64) bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail(hits.Add(1)) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func runRetrying(t *testing.T, url string, p RetryPolicy, n uint64, conc int) (*Summary, *Retrying) {
	t.Helper()
	client := NewHTTPClient(4, false)
	defer client.CloseIdleConnections()
	rt := NewRetrying(&HTTP{Client: client, Requests: []HTTPRequest{{Method: "GET", URL: url}}}, p)
	sum, err := Run(context.Background(), rt, Options{Concurrency: conc, Requests: n, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sum, rt
}

// A server that drops every other request: retries make every request
// succeed, and the report counts them. (One client, so that no request
// can meet the failures twice in a row.)
func TestRetriesRecoverTransientFailures(t *testing.T) {
	srv, hits := server(t, func(hit int64) bool { return hit%2 == 0 })
	sum, rt := runRetrying(t, srv.URL, RetryPolicy{Max: 3, Base: time.Millisecond, Budget: 1}, 200, 1)
	made, refused := rt.Retries()
	if sum.OK != 200 || sum.Retries == 0 || sum.Retries != made || refused != 0 {
		t.Fatalf("%d of 200 ok, %d retries recorded, %d made, %d refused", sum.OK, sum.Retries, made, refused)
	}
	if hits.Load() != 200+made {
		t.Fatalf("the server saw %d requests, want 200 + %d retries", hits.Load(), made)
	}
}

// A server that always fails is not hit by a retry storm: retries stay
// within the budget (10% of requests, plus a burst of 10), not 3x.
func TestRetryBudgetBoundsAStorm(t *testing.T) {
	srv, hits := server(t, func(int64) bool { return true })
	sum, rt := runRetrying(t, srv.URL, RetryPolicy{Max: 3, Base: time.Millisecond, Budget: 0.1, BudgetBurst: 10}, 500, 4)
	made, refused := rt.Retries()
	if sum.OK != 0 || made > 10+50 || refused == 0 {
		t.Fatalf("%d retries made (want at most 60), %d refused", made, refused)
	}
	if hits.Load() > 500+60 {
		t.Fatalf("the failing server saw %d requests for 500 sent", hits.Load())
	}
}

// Only failures another attempt may fix are retried.
func TestRetryOnlyWhatMaySucceed(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	_, rt := runRetrying(t, srv.URL, RetryPolicy{Max: 3, Base: time.Millisecond, Budget: 1}, 50, 4)
	if made, _ := rt.Retries(); made != 0 || hits.Load() != 50 {
		t.Fatalf("400s: %d retries, %d hits; want none retried", made, hits.Load())
	}
}
