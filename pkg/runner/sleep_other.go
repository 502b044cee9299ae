//go:build !unix

package runner

import (
	"runtime"
	"time"
)

// sleepPrecise yields the processor: without a kernel sleep of fine
// resolution, waitShort polls instead.
func sleepPrecise(time.Duration) { runtime.Gosched() }
