package runner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A version admits a running and a forming batch per instance, lets the
// next max_queue_size less the forming batch wait in arrival order, and
// refuses the rest at once; the waiting count as queued; a place given
// back goes to the first in line, and one who gives up leaves the line.
func TestAdmissionHoldsTheExcessInOrderAndRefusesPastTheQueue(t *testing.T) {
	// One instance of batches of 2, a queue of 5: 2 running + 2 forming
	// admitted, 3 waiting, the 8th refused.
	synctest.Test(t, func(t *testing.T) {
		// In process: a model host's socket is I/O, which a bubble cannot
		// wait out.
		m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(2), Isolation: IsolationNone, DynamicBatching: DynamicBatching{MaxQueueSize: 5}})
		ctx := context.Background()
		for i := range 4 {
			if waited, err := m.Enter(ctx); err != nil || waited != 0 {
				t.Fatalf("request %d: waited %v, %v; want admitted at once", i, waited, err)
			}
		}
		order := make(chan int, 3)
		for i := range 3 {
			go func() {
				waited, err := m.Enter(ctx)
				if err != nil {
					t.Errorf("waiter %d: %v", i, err)
					return
				}
				if waited != time.Duration(i+1)*time.Second {
					t.Errorf("waiter %d waited %v, want %v", i, waited, time.Duration(i+1)*time.Second)
				}
				order <- i
			}()
			synctest.Wait() // in line, in this order
		}
		if st := m.Stats(); st.QueueLength != 3 {
			t.Fatalf("queue length %d with 3 waiting for admission, want 3", st.QueueLength)
		}
		if _, err := m.Enter(ctx); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("past max_queue_size: %v, want ErrQueueFull", err)
		}
		for i := range 3 {
			time.Sleep(time.Second)
			m.Leave()
			if got := <-order; got != i {
				t.Fatalf("place %d went to waiter %d: want arrival order", i, got)
			}
		}
		if st := m.Stats(); st.QueueLength != 0 {
			t.Fatalf("queue length %d after every waiter was admitted", st.QueueLength)
		}

		// One who gives up leaves the line; the place goes to the next.
		gaveUp, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := m.Enter(gaveUp); errc <- err }()
		synctest.Wait()
		next := make(chan error, 1)
		go func() { _, err := m.Enter(ctx); next <- err }()
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a waiter past its deadline: %v, want DeadlineExceeded", err)
		}
		m.Leave()
		if err := <-next; err != nil {
			t.Fatalf("the next in line: %v", err)
		}
		for range 4 {
			m.Leave()
		}
	})
}

// A queue smaller than a batch bounds the running batch too: a batch forms
// from the batcher's queue, so max_batch_size 64 and max_queue_size 4 admit
// 4 running and 4 forming, and refuse the ninth before its body is read
// with a message that names the queue's size.
func TestAdmissionWithAQueueSmallerThanABatch(t *testing.T) {
	m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(64), Isolation: IsolationNone, DynamicBatching: DynamicBatching{MaxQueueSize: 4}})
	ctx := context.Background()
	for i := range 8 {
		if _, err := m.Enter(ctx); err != nil {
			t.Fatalf("request %d: %v, want admitted", i, err)
		}
	}
	_, err := m.Enter(ctx)
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "max_queue_size 4") {
		t.Fatalf("ninth request: %v, want ErrQueueFull naming max_queue_size 4", err)
	}
	for range 8 {
		m.Leave()
	}
}
