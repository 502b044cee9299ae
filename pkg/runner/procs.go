package runner

import (
	"runtime"
	"sync"
)

// An instance's worker spends most of its time inside the runtime's Run, a
// cgo call during which it keeps its P (Go's scheduling slot) until the
// scheduler's monitor takes it back, which can take milliseconds. With
// GOMAXPROCS at the core count, busy instances leave request handling
// without a P: on mlp with 64 callers and two instances, 120k rows/s at
// GOMAXPROCS 2 against 179k at 4. So every loaded instance reserves one P
// on top of the process's own setting, and gives it back when unloaded.
var procs struct {
	mu             sync.Mutex
	base, reserved int
}

func reserveProcs(n int) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.reserved == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.reserved += n
	runtime.GOMAXPROCS(procs.base + procs.reserved)
}

func releaseProcs(n int) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	procs.reserved -= n
	runtime.GOMAXPROCS(procs.base + procs.reserved)
}
