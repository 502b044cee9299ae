//go:build unix

package clock

import (
	"syscall"
	"time"
)

// sleepKernel blocks the calling thread in the kernel for d, bypassing
// Go's timers and their millisecond granularity.
func sleepKernel(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // an interrupted sleep only ends early
}
