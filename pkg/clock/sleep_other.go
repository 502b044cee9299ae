//go:build !unix

package clock

import (
	"runtime"
	"time"
)

// sleepKernel yields the processor: without a kernel sleep of fine
// resolution, waitShort polls instead.
func sleepKernel(time.Duration) { runtime.Gosched() }
