package lograte

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Of a burst, one line goes through a second, the next saying how many it
// stands for; concurrent callers get one through between them.
func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l Limiter
		if n, ok := l.Allow(); !ok || n != 0 {
			t.Fatalf("the first line: %d, %v", n, ok)
		}
		var wg sync.WaitGroup
		var through sync.Map
		for i := range 100 {
			wg.Go(func() {
				if _, ok := l.Allow(); ok {
					through.Store(i, true)
				}
			})
		}
		wg.Wait()
		through.Range(func(k, _ any) bool { t.Fatalf("line %v went through within the second", k); return false })
		time.Sleep(time.Second)
		if n, ok := l.Allow(); !ok || n != 100 {
			t.Fatalf("after a second: %d held back, %v; want 100, true", n, ok)
		}
		if _, ok := l.Allow(); ok {
			t.Fatal("a second line within the second")
		}
	})
}
