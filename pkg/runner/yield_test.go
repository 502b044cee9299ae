package runner

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// A worker yields after a batch while its callers are about all that is
// runnable, and not while many more goroutines wait for a P: there the
// yield would put it behind them all, its model idle.
func TestWorkerYieldsOnlyWhenItsCallersAreAllThatRuns(t *testing.T) {
	var y yielder
	if !y.worthIt(8) {
		t.Fatal("nothing else runnable: the yield was judged not worth it")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	busy := 64 * runtime.GOMAXPROCS(0)
	for range busy {
		wg.Go(func() {
			for !stop.Load() {
				runtime.Gosched() // runnable all the time
			}
		})
	}
	saturated := false
	for range 100 { // the count is the scheduler's approximation
		if !y.worthIt(8) {
			saturated = true
			break
		}
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	if !saturated {
		t.Fatalf("%d goroutines runnable: the worker still yielded after a batch of 8", busy)
	}
}
