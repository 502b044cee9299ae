//go:build unix

package runner

import (
	"syscall"
	"time"
)

// sleepPrecise blocks the calling thread in the kernel for d, bypassing
// Go's timers and their millisecond granularity.
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // an interrupted sleep only ends early
}
