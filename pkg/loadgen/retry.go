package loadgen

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// RetryPolicy retries failed requests the way a careful client does: only
// failures another attempt may fix, after a jittered exponential back-off,
// within the request's own timeout, and only while a retry budget lasts,
// so that a failing server is not hit by a retry storm.
type RetryPolicy struct {
	// Max is the most retries after the first attempt.
	Max int
	// Base and Cap bound the back-off: before retry n (from 0) the client
	// waits a uniformly random time in [0, min(Cap, Base × 2^n)] ("full
	// jitter"), so that clients that failed together do not retry together.
	Base, Cap time.Duration
	// Budget is the retries allowed per request sent, as a fraction
	// (0.1: retries add at most 10% to the load), with BudgetBurst retries
	// in hand from the start.
	Budget      float64
	BudgetBurst int
}

// Retry defaults.
const (
	DefaultRetryBase   = 25 * time.Millisecond
	DefaultRetryCap    = time.Second
	DefaultRetryBudget = 0.1
	DefaultRetryBurst  = 10
)

// Retrying is a Target that retries its Target's failures under a
// RetryPolicy.
type Retrying struct {
	Target Target
	Policy RetryPolicy
	// tokens holds the budget in thousandths of a retry.
	tokens    atomic.Int64
	started   atomic.Bool
	retries   atomic.Int64
	exhausted atomic.Int64
}

// NewRetrying wraps t; zero fields of p take the defaults.
func NewRetrying(t Target, p RetryPolicy) *Retrying {
	if p.Base <= 0 {
		p.Base = DefaultRetryBase
	}
	if p.Cap <= 0 {
		p.Cap = DefaultRetryCap
	}
	if p.Budget <= 0 {
		p.Budget = DefaultRetryBudget
	}
	if p.BudgetBurst <= 0 {
		p.BudgetBurst = DefaultRetryBurst
	}
	r := &Retrying{Target: t, Policy: p}
	r.tokens.Store(int64(p.BudgetBurst) * 1000)
	return r
}

// Retries returns the retries made, and those the budget refused.
func (t *Retrying) Retries() (made, refused int64) { return t.retries.Load(), t.exhausted.Load() }

// retryable reports whether another attempt may succeed where r failed:
// a connection refused or reset, a shed or unavailable answer. Bad
// requests and server errors would fail again; a timeout has used the
// request's time.
func retryable(r *Result) bool {
	switch r.Kind {
	case KindRefused, KindReset, "status 429", "status 502", "status 503",
		"grpc Unavailable", "grpc ResourceExhausted":
		return true
	}
	return false
}

// Do sends r, retrying as the policy allows. The result is the last
// attempt's, timed from the first attempt's start; Attempts counts them.
func (t *Retrying) Do(ctx context.Context, r *Result) {
	// A token bucket: each request earns Budget of a retry, and the
	// bucket holds at most BudgetBurst.
	limit := int64(t.Policy.BudgetBurst) * 1000
	if n := t.tokens.Add(int64(t.Policy.Budget * 1000)); n > limit {
		t.tokens.Store(limit)
	}
	intended := r.Intended
	var first time.Time
	for attempt := 0; ; attempt++ {
		t.Target.Do(ctx, r)
		if first.IsZero() {
			first = r.Start
		}
		r.Attempts = attempt + 1
		if r.Err == nil || attempt >= t.Policy.Max || !retryable(r) || ctx.Err() != nil {
			break
		}
		if !t.withdraw() {
			t.exhausted.Add(1)
			break
		}
		t.retries.Add(1)
		backoff := min(t.Policy.Cap, t.Policy.Base<<min(attempt, 30))
		wait := time.NewTimer(time.Duration(rand.Int64N(int64(backoff) + 1)))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
		}
		if ctx.Err() != nil {
			break
		}
		*r = Result{Intended: intended, Model: r.Model} // a retry goes to the same model
	}
	if !first.IsZero() {
		r.Start = first
	}
}

// withdraw takes one retry from the budget, if there is one.
func (t *Retrying) withdraw() bool {
	for {
		n := t.tokens.Load()
		if n < 1000 {
			return false
		}
		if t.tokens.CompareAndSwap(n, n-1000) {
			return true
		}
	}
}
