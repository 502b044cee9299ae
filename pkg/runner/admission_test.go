package runner

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
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
		var held []*Place
		for i := range 4 {
			place := new(Place)
			if waited, err := m.Enter(ctx, place); err != nil || waited != 0 {
				t.Fatalf("request %d: waited %v, %v; want admitted at once", i, waited, err)
			}
			held = append(held, place)
		}
		order := make(chan int, 3)
		waiters := make([]*Place, 3)
		for i := range 3 {
			waiters[i] = new(Place)
			go func() {
				waited, err := m.Enter(ctx, waiters[i])
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
		if _, err := m.Enter(ctx, new(Place)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("past max_queue_size: %v, want ErrQueueFull", err)
		}
		for i := range 3 {
			time.Sleep(time.Second)
			held[i].Leave()
			held[i].Leave() // a place is given back once
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
		go func() { _, err := m.Enter(gaveUp, new(Place)); errc <- err }()
		synctest.Wait()
		next := make(chan error, 1)
		last := new(Place)
		go func() { _, err := m.Enter(ctx, last); next <- err }()
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a waiter past its deadline: %v, want DeadlineExceeded", err)
		}
		held[3].Leave()
		if err := <-next; err != nil {
			t.Fatalf("the next in line: %v", err)
		}
		for _, p := range append(waiters, last) {
			p.Leave()
		}
		if n := len(m.admission.slots); n != 0 {
			t.Fatalf("%d places still taken after every one was given back", n)
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
	places := make([]Place, 8)
	for i := range places {
		if _, err := m.Enter(ctx, &places[i]); err != nil {
			t.Fatalf("request %d: %v, want admitted", i, err)
		}
	}
	_, err := m.Enter(ctx, new(Place))
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "max_queue_size 4") {
		t.Fatalf("ninth request: %v, want ErrQueueFull naming max_queue_size 4", err)
	}
	for i := range places {
		places[i].Leave()
	}
}

// A request's place is given back by the worker that answers its batch,
// before its caller reads the answer: on a saturated core a caller woken
// with its answer can wait long for its turn to encode it, and its place
// would meanwhile refuse a request that could run. A request that never
// reached a batch (refused as invalid) keeps its place for its caller to
// give back; giving back twice frees one place, not two.
func TestTheBatchGivesThePlaceBackBeforeItsCaller(t *testing.T) {
	m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(2), Isolation: IsolationNone, DynamicBatching: DynamicBatching{MaxQueueSize: 2}})
	r := rand.New(rand.NewPCG(9, 9))
	ctx := context.Background()
	place := new(Place)
	if _, err := m.Enter(ctx, place); err != nil {
		t.Fatal(err)
	}
	req := randomRequest(m, 1, 1, r)
	req.Place = place
	if _, err := m.Infer(ctx, req); err != nil {
		t.Fatal(err)
	}
	if place.held.Load() || len(m.admission.slots) != 0 {
		t.Fatalf("after its batch was answered the request still holds its place (%d of %d taken)", len(m.admission.slots), cap(m.admission.slots))
	}
	place.Leave() // the caller's own Leave, after the batch's: a no-op

	refused := new(Place)
	if _, err := m.Enter(ctx, refused); err != nil {
		t.Fatal(err)
	}
	bad := &Request{Inputs: []tensor.Tensor{tensor.New("pixels", []int64{1, 784}, make([]float32, 784))}, Place: refused}
	if _, err := m.Infer(ctx, bad); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("an input the model does not have: %v, want ErrInvalidInput", err)
	}
	if !refused.held.Load() || len(m.admission.slots) != 1 {
		t.Fatalf("a request refused before any batch gave its place back (%d taken): its caller must", len(m.admission.slots))
	}
	refused.Leave()
	refused.Leave()
	if n := len(m.admission.slots); n != 0 {
		t.Fatalf("%d places taken after the caller gave its place back", n)
	}
}
