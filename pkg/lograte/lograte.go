// Package lograte bounds how often a repeated log line is written: at
// most once per interval, the line saying how many it stands for. A
// failure that every request of a flood meets (a runtime refusing each
// batch, each request answered 500) then costs the log a line a second,
// not a line a request: 8 MB/s of log from one client before.
package lograte

import (
	"sync/atomic"
	"time"
)

// Limiter lets a line through at most once per Every; the zero value
// uses one second. It is safe for concurrent use and takes no lock.
type Limiter struct {
	Every time.Duration

	last    atomic.Int64 // when a line last went through, Unix nanoseconds
	skipped atomic.Int64 // lines held back since
}

// Allow reports whether a line may be written now and, when it may, how
// many were held back since the last one (to log beside it).
func (l *Limiter) Allow() (heldBack int64, ok bool) {
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(every) || !l.last.CompareAndSwap(last, now) {
		l.skipped.Add(1)
		return 0, false
	}
	return l.skipped.Swap(0), true
}
