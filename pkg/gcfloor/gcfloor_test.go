package gcfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func heapGoal(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func gogc(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// collectUntil runs collections until ok holds: the floor's cleanup runs
// on the runtime's own goroutine after a cycle.
func collectUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for range 500 {
		runtime.GC()
		if ok() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("after 500 collections: %s (GOGC %d)", what, gogc(t))
}

func TestFloorRaisesGOGCWhileTheHeapIsSmall(t *testing.T) {
	t.Setenv("GOGC", "") // unset for Hold; the runtime read it at start
	release := Hold(256 << 20)
	if got := gogc(t); got < 1000 {
		t.Fatalf("GOGC %d with a 256 MiB floor and a heap of a few MiB, want the goal near the floor", got)
	}
	// Near the floor, not past it: the runtime's own minimum scales with
	// GOGC too.
	if goal := heapGoal(t); goal > 300<<20 || goal < 200<<20 {
		t.Fatalf("heap goal %d MiB with a 256 MiB floor", goal>>20)
	}
	// The floor outlives collections: each cycle re-arms the next.
	for range 3 {
		runtime.GC()
	}
	collectUntil(t, "the floor still held", func() bool { return gogc(t) >= 1000 })

	// A live heap above the floor gets the runtime's default again.
	ballast := make([][]byte, 0, 320)
	for range 320 {
		ballast = append(ballast, make([]byte, 1<<20))
	}
	collectUntil(t, "GOGC back to 100 with 320 MiB live", func() bool { return gogc(t) == basePercent })
	runtime.KeepAlive(ballast)
	ballast = nil
	collectUntil(t, "the floor again once the heap shrank", func() bool { return gogc(t) >= 1000 })

	release()
	release() // a second call is harmless
	if got := gogc(t); got != basePercent {
		t.Fatalf("GOGC %d after release, want %d", got, basePercent)
	}
}

func TestHoldsNest(t *testing.T) {
	t.Setenv("GOGC", "")
	a := Hold(128 << 20)
	b := Hold(256 << 20)
	high := gogc(t)
	a()
	if got := gogc(t); got < 1000 {
		t.Fatalf("GOGC %d with one hold left, want the floor kept", got)
	}
	b()
	if got := gogc(t); got != basePercent || high <= basePercent {
		t.Fatalf("GOGC %d while held, %d after the last release; want above and at %d", high, got, basePercent)
	}
}

func TestOperatorsGOGCIsLeftAlone(t *testing.T) {
	t.Setenv("GOGC", "150")
	release := Hold(256 << 20)
	defer release()
	if got := gogc(t); got != basePercent {
		t.Fatalf("GOGC %d: the environment's GOGC names the operator's choice, want the floor to stand aside", got)
	}
}
