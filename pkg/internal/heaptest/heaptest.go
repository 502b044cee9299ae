// Package heaptest measures what the heap hands out, for tests that bound
// what decoding a hostile input may cost.
package heaptest

import "runtime"

// Allocated returns the bytes the heap handed out while f ran, by every
// goroutine of the process (a server's included).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
