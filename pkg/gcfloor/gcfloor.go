// Package gcfloor keeps the Go garbage collector from running while the
// heap is small. The runtime has a ceiling (GOMEMLIMIT) but no floor: with
// GOGC=100 the next collection starts when the heap reaches twice the live
// heap, and a server whose live heap is a few MiB (the models live in
// their hosts) collects dozens of times a second under load, each cycle
// scanning every goroutine's stack. Measured on mlp over gRPC, 64 in
// flight, one core: 61 collections in 2 s, and a goal of 6 MiB; with the
// goal held at 64 MiB, 30% more requests a second (docs/performance.md).
//
// Hold raises GOGC, after every collection, so that the next goal is at
// least the floor; above the floor the runtime's own rule (GOGC=100)
// applies. A GOGC environment variable is the operator's choice and is
// left alone; GOMEMLIMIT still bounds the heap, floor or not.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultFloor is the heap goal, in bytes, below which the collector is
// kept from starting: 64 MiB.
const DefaultFloor = 64 << 20

// basePercent is GOGC above the floor, the runtime's default.
const basePercent = 100

// minLive keeps the percentage finite for a near-empty heap, in bytes.
const minLive = 1 << 20

// runtimeHeapMinimum is the runtime's own least goal at GOGC=100, which it
// scales with GOGC (runtime/mgcpacer.go, defaultHeapMinimum): a GOGC past
// floor×100/runtimeHeapMinimum would put the goal above the floor.
const runtimeHeapMinimum = 4 << 20

var state struct {
	sync.Mutex
	holders int    // Hold calls not yet released
	floor   uint64 // the largest floor held
	sample  []metrics.Sample
}

// Hold keeps the heap goal at or above floor bytes until the returned
// release is called. Holds nest: the largest floor held applies, and GOGC
// returns to 100 when the last is released. It does nothing, and its
// release nothing, when the GOGC environment variable is set or floor is 0.
func Hold(floor uint64) (release func()) {
	if floor == 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	state.Lock()
	defer state.Unlock()
	state.holders++
	if state.holders == 1 {
		state.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
		arm()
	}
	state.floor = max(state.floor, floor)
	tuneLocked()
	var once sync.Once
	return func() { once.Do(unhold) }
}

func unhold() {
	state.Lock()
	defer state.Unlock()
	if state.holders--; state.holders == 0 {
		state.floor = 0
		debug.SetGCPercent(basePercent)
	}
}

// sentinel is garbage the collector finds in each cycle: its cleanup
// runs after the cycle that freed it, retunes and arms the next.
// (64 bytes: too large for the tiny allocator, which would keep it alive
// beside its neighbours).
type sentinel struct{ _ [64]byte }

func arm() {
	s := new(sentinel)
	runtime.AddCleanup(s, func(struct{}) { collected() }, struct{}{})
}

// collected runs on the runtime's cleanup goroutine once per collection.
func collected() {
	state.Lock()
	defer state.Unlock()
	if state.holders == 0 {
		return // released: stop re-arming
	}
	tuneLocked()
	arm()
}

// tuneLocked sets GOGC so that the next goal, live + (live + stacks +
// globals) × GOGC/100 (the runtime's rule), is near the floor, and never
// below the runtime's default.
func tuneLocked() {
	metrics.Read(state.sample)
	for _, s := range state.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			debug.SetGCPercent(basePercent) // a runtime without the metrics: no floor
			return
		}
	}
	live := max(state.sample[0].Value.Uint64(), minLive)
	scan := live + state.sample[1].Value.Uint64() + state.sample[2].Value.Uint64()
	percent := uint64(basePercent)
	if state.floor > live {
		percent = (state.floor - live) * 100 / scan
	}
	percent = min(percent, state.floor*100/runtimeHeapMinimum)
	debug.SetGCPercent(int(max(percent, basePercent)))
}
