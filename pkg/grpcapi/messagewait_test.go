package grpcapi

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A call's wait for its message ends it with DeadlineExceeded past the
// bound (within a tick); Arrived lifts the bound for good; the calls that
// ended or got their message are dropped, and with none left waiting the
// timer is no longer armed.
func TestMessageWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewMessageWait(time.Second)

		late, _ := w.Tap(t.Context(), nil)
		time.Sleep(time.Second + w.tick)
		synctest.Wait()
		if !errors.Is(late.Err(), context.DeadlineExceeded) || w.Expired() != 1 {
			t.Fatalf("past the bound: %v, %d expired; want DeadlineExceeded, 1", late.Err(), w.Expired())
		}
		select {
		case <-late.Done():
		default:
			t.Fatal("past the bound the call's context is not done")
		}
		Arrived(late) // too late: it stays ended
		if !errors.Is(late.Err(), context.DeadlineExceeded) {
			t.Fatalf("a message after the bound revived the call: %v", late.Err())
		}

		arrived, _ := w.Tap(t.Context(), nil)
		Arrived(context.WithValue(arrived, struct{}{}, 1)) // a context derived from the call's
		Arrived(arrived)
		parent, end := context.WithCancel(t.Context())
		gone, _ := w.Tap(parent, nil)
		end() // reset by its client before its message
		time.Sleep(time.Hour)
		synctest.Wait()
		if arrived.Err() != nil || !errors.Is(gone.Err(), context.Canceled) || w.Expired() != 1 {
			t.Fatalf("after its message: %v; ended by its client: %v; %d expired; want no error, Canceled, still 1", arrived.Err(), gone.Err(), w.Expired())
		}
		w.mu.Lock()
		kept, armed := len(w.calls), w.armed
		w.mu.Unlock()
		if kept != 0 || armed {
			t.Fatalf("%d calls kept, timer armed %v, with none waiting", kept, armed)
		}
		Arrived(t.Context()) // a context Tap did not give: nothing to do
	})
}

// Calls that get their message at once are dropped as calls come, not
// kept until a sweep: what is kept stays about the calls still waiting.
func TestMessageWaitKeepsOnlyTheWaiting(t *testing.T) {
	w := NewMessageWait(time.Hour)
	stalled, _ := w.Tap(t.Context(), nil)
	for range 100 * minCompact {
		c, _ := w.Tap(t.Context(), nil)
		Arrived(c)
	}
	w.mu.Lock()
	kept := len(w.calls)
	w.mu.Unlock()
	if kept > 2*minCompact {
		t.Fatalf("%d calls kept after %d arrived at once and one stalled", kept, 100*minCompact)
	}
	if stalled.Err() != nil {
		t.Fatal(stalled.Err())
	}
}
