// Package clock waits precisely. Go's timers fire up to a millisecond late
// on Linux (the network poller sleeps in whole milliseconds): fine for
// timeouts, too coarse for sub-millisecond batching delays and for pacing
// thousands of requests a second.
package clock

import "time"

// Coarse is the shortest wait left to Go's timers; shorter ones, and the
// last stretch of longer ones, are slept in the kernel.
const Coarse = 2 * time.Millisecond

// Slice bounds one kernel sleep, so that a waiter polling for something
// else (an arrival) notices it within this long.
const Slice = 50 * time.Microsecond

// SleepUntil returns at t, within tens of microseconds: a Go timer for all
// but the last Coarse of the wait, kernel sleeps of at most Slice after it.
// It returns early when done is closed (nil: never).
func SleepUntil(t time.Time, done <-chan struct{}) {
	if d := time.Until(t) - Coarse; d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-done:
			timer.Stop()
			return
		}
	}
	for {
		left := time.Until(t)
		if left <= 0 {
			return
		}
		select {
		case <-done:
			return
		default:
			sleepKernel(min(left, Slice))
		}
	}
}

// Sleep sleeps one kernel slice of at most d, whatever Go's timers would
// do: for callers that poll between slices.
func Sleep(d time.Duration) { sleepKernel(min(d, Slice)) }
