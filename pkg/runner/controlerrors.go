package runner

import (
	"errors"
	"fmt"
	"time"
)

// The errors of model control that tell a client when to try again.

// ErrMemoryBudget: the version does not fit in the memory budget and no
// loaded version is idle enough to make room; retry later.
var ErrMemoryBudget = errors.New("memory budget exhausted")

// BudgetError is a load refused for want of room; it wraps
// ErrMemoryBudget and says when to try again (RetryAfter 0: waiting
// will not help, the version is larger than the whole budget).
type BudgetError struct {
	Model      string
	Version    int64
	Need       int64 // bytes the version is expected to take
	Budget     int64 // bytes
	RetryAfter time.Duration
	Reason     string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%s: model %q version %d needs about %s of the %s budget: %s", ErrMemoryBudget, e.Model, e.Version, FormatBytes(e.Need), FormatBytes(e.Budget), e.Reason)
}

func (e *BudgetError) Unwrap() error { return ErrMemoryBudget }

// LoadError is an on-demand load that failed (the model host killed while
// it loaded, a model file that does not load). It wraps ErrModelNotReady
// and the load's error. Requests get it without another try until
// RetryAt; the next request after that loads again. The wait doubles
// with each failure in a row, from LoadRetryMin to LoadRetryMax.
type LoadError struct {
	Model    string
	Version  int64
	Failures int // in a row
	RetryAt  time.Time
	Err      error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("%s: model %q version %d did not load (%d in a row; a request after the back-off tries again): %v", ErrModelNotReady, e.Model, e.Version, e.Failures, e.Err)
}

func (e *LoadError) Unwrap() []error { return []error{ErrModelNotReady, e.Err} }

// LoadWaitError is a request that waited Control.LoadWait for its
// version's on-demand load, which goes on: a retry a moment later likely
// finds the version loaded. It wraps ErrModelNotReady.
type LoadWaitError struct {
	Model  string
	Waited time.Duration
}

func (e *LoadWaitError) Error() string {
	return fmt.Sprintf("%s: model %q is still loading after %s, the most a request waits for a load; it goes on loading: retry", ErrModelNotReady, e.Model, e.Waited)
}

func (e *LoadWaitError) Unwrap() error { return ErrModelNotReady }

// The back-off between on-demand loads of a version that failed.
const (
	LoadRetryMin = time.Second
	LoadRetryMax = time.Minute
)

// loadRetry is the wait after the given number of failed loads in a row.
func loadRetry(failures int) time.Duration {
	return min(LoadRetryMax, LoadRetryMin<<min(failures-1, 6))
}
