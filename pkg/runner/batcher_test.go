package runner

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// The batcher's timing is tested on synctest's virtual clock: delays and
// deadlines are exact and the tests take no real time.

func testBatcher(maxBatch int, delay time.Duration, preferred ...int) *batcher {
	cfg := Config{MaxBatchSize: &maxBatch, DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(delay), PreferredBatchSizes: preferred, PriorityLevels: 2}}
	cfg = cfg.withDefaults(true)
	return newBatcher(cfg)
}

// req is a pending request of rows rows and one input of width cols.
func req(rows, cols int64) *pending {
	return &pending{
		inputs:   []tensor.Tensor{{Shape: []int64{rows, cols}}},
		rows:     rows,
		enqueued: time.Now(),
		done:     make(chan result, 1),
	}
}

func submit(t *testing.T, b *batcher, ps ...*pending) {
	t.Helper()
	for _, p := range ps {
		if err := b.submit(p); err != nil {
			t.Fatal(err)
		}
	}
}

func rowsOf(batch []*pending) (n int64) {
	for _, p := range batch {
		n += p.rows
	}
	return n
}

func TestBatcherWaitsMaxQueueDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(8, 5*time.Millisecond)
		timer := time.NewTimer(time.Hour)
		start := time.Now()
		submit(t, b, req(1, 4), req(2, 4))
		batch, err := b.next(nil, timer, nil)
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 5*time.Millisecond {
			t.Fatalf("batch left after %v, want exactly max_queue_delay 5ms", waited)
		}
		if rowsOf(batch) != 3 {
			t.Fatalf("batch of %d rows, want 3", rowsOf(batch))
		}
	})
}

func TestBatcherLeavesAtOnceWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(4, time.Second)
		timer := time.NewTimer(time.Hour)
		start := time.Now()
		submit(t, b, req(2, 4), req(1, 4), req(1, 4), req(3, 4))
		batch, _ := b.next(nil, timer, nil)
		if time.Since(start) != 0 || rowsOf(batch) != 4 || len(batch) != 3 {
			t.Fatalf("got %d requests, %d rows after %v; want the first three (4 rows) at once", len(batch), rowsOf(batch), time.Since(start))
		}
		// The 3-row request is left; it waits out the delay alone.
		batch, _ = b.next(batch, timer, nil)
		if rowsOf(batch) != 3 || time.Since(start) != time.Second {
			t.Fatalf("second batch %d rows after %v", rowsOf(batch), time.Since(start))
		}
	})
}

func TestBatcherPreferredSizes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(16, time.Second, 4, 8)
		timer := time.NewTimer(time.Hour)
		for range 6 {
			submit(t, b, req(1, 4))
		}
		batch, _ := b.next(nil, timer, nil)
		if rowsOf(batch) != 4 {
			t.Fatalf("6 rows queued, preferred [4 8]: formed %d, want 4", rowsOf(batch))
		}
	})
}

func TestBatcherNeverMergesShapes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(8, 0)
		timer := time.NewTimer(time.Hour)
		a1, x, a2 := req(1, 4), req(1, 5), req(1, 4)
		submit(t, b, a1, x, a2)
		batch, _ := b.next(nil, timer, nil)
		if len(batch) != 2 || batch[0] != a1 || batch[1] != a2 {
			t.Fatalf("first batch %v, want the two [*,4] requests", batch)
		}
		batch, _ = b.next(batch, timer, nil)
		if len(batch) != 1 || batch[0] != x {
			t.Fatalf("second batch %v, want the [*,5] request alone", batch)
		}
	})
}

func TestBatcherHighPriorityFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(1, 0)
		timer := time.NewTimer(time.Hour)
		low, high := req(1, 4), req(1, 4)
		low.priority, high.priority = 1, 0
		submit(t, b, low, high)
		batch, _ := b.next(nil, timer, nil)
		if batch[0] != high {
			t.Fatal("the low-priority request ran first")
		}
	})
}

func TestBatcherExpiresQueuedRequestsAtTheirDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(8, time.Minute)
		timer := time.NewTimer(time.Hour)
		start := time.Now()
		doomed, patient := req(1, 4), req(1, 4)
		doomed.deadline = start.Add(10 * time.Millisecond)
		submit(t, b, doomed, patient)
		go func() { _, _ = b.next(nil, timer, nil) }()
		r := <-doomed.done
		if !errors.Is(r.err, ErrDeadlineExceeded) {
			t.Fatalf("err %v, want ErrDeadlineExceeded", r.err)
		}
		if at := time.Since(start); at != 10*time.Millisecond {
			t.Fatalf("answered after %v, want at its 10ms deadline", at)
		}
		if n, _ := b.depth(); n != 1 {
			t.Fatalf("%d queued, want only the patient request", n)
		}
		b.mu.Lock()
		deadlines := b.deadlines
		b.mu.Unlock()
		if deadlines != 0 {
			t.Fatalf("%d queued requests counted with a deadline, want 0", deadlines)
		}
		b.close()
	})
}

// A request whose caller stopped waiting is never handed out, and leaves
// no count behind: forming a batch reads the whole queue only while some
// queued request has gone or may expire.
func TestBatcherNeverHandsOutAbandonedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(2, time.Minute)
		timer := time.NewTimer(time.Hour)
		first, second, third, fourth := req(1, 4), req(1, 4), req(1, 4), req(1, 4)
		submit(t, b, first, second, third, fourth)
		for _, p := range []*pending{first, third} {
			if !b.abandon(p) {
				t.Fatal("a queued request could not be abandoned")
			}
		}
		batch, err := b.next(nil, timer, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) != 2 || batch[0] != second || batch[1] != fourth {
			t.Fatalf("batch of %d, want the two requests still waited for", len(batch))
		}
		if n, _ := b.depth(); n != 0 || b.abandoned.Load() != 0 {
			t.Fatalf("%d queued and %d abandoned counted, want none", n, b.abandoned.Load())
		}
		if b.abandon(second) {
			t.Fatal("a request a worker took was abandoned")
		}
	})
}

func TestBatcherDrainsOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBatcher(8, time.Minute)
		timer := time.NewTimer(time.Hour)
		submit(t, b, req(1, 4))
		b.close()
		if err := b.submit(req(1, 4)); !errors.Is(err, ErrClosed) {
			t.Fatalf("submit after close: %v", err)
		}
		batch, err := b.next(nil, timer, nil)
		if err != nil || len(batch) != 1 {
			t.Fatalf("queued request not handed out after close: %v %v", batch, err)
		}
		if _, err := b.next(batch, timer, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("drained batcher: err %v, want ErrClosed", err)
		}
	})
}

// waitingWorker queues one single-row request on a batcher of maxBatch
// rows and a minute's delay, and starts a worker on it, which waits: the
// batch it takes comes on the channel.
func waitingWorker(t *testing.T, maxBatch int) (*batcher, <-chan []*pending) {
	b := testBatcher(maxBatch, time.Minute)
	timer := time.NewTimer(time.Hour)
	submit(t, b, req(1, 4))
	got := make(chan []*pending, 1)
	go func() {
		batch, _ := b.next(nil, timer, nil)
		got <- batch
	}()
	synctest.Wait()
	return b, got
}

// A waiting worker is woken only by the arrival that fills its batch, or
// by one whose deadline may come before the worker would wake: these are
// the two arrivals it must not sleep through.
func TestBatcherWakesAWaitingWorkerWhenItsBatchFills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		b, got := waitingWorker(t, 4) // it waits for three more rows
		if b.idle != 1 || b.need != 3 {
			t.Fatalf("waiting workers %d needing %d rows, want 1 needing 3", b.idle, b.need)
		}
		submit(t, b, req(1, 4), req(1, 4))
		synctest.Wait()
		select {
		case batch := <-got:
			t.Fatalf("a batch of %d rows left before it filled", rowsOf(batch))
		default:
		}
		submit(t, b, req(1, 4))
		if batch := <-got; rowsOf(batch) != 4 || time.Since(start) != 0 {
			t.Fatalf("batch of %d rows after %v, want 4 rows at once", rowsOf(batch), time.Since(start))
		}
	})
}

func TestBatcherWakesAWaitingWorkerForADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		b, _ := waitingWorker(t, 8) // it sleeps until the first request's delay
		doomed := req(1, 4)
		doomed.deadline = start.Add(10 * time.Millisecond)
		submit(t, b, doomed)
		r := <-doomed.done
		if !errors.Is(r.err, ErrDeadlineExceeded) || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("err %v after %v, want ErrDeadlineExceeded at its 10ms deadline", r.err, time.Since(start))
		}
		b.close()
	})
}

// A request that times out gives its place in a full queue to the next
// one at once: whether its caller stops waiting (the context's deadline)
// or its queue deadline passes while every worker is busy, no worker has
// to look at the queue before the next submission is accepted.
func TestBatcherReadyWhenTheNextBatchIsQueued(t *testing.T) {
	b := testBatcher(4, 0)
	for i := range 4 {
		if b.ready() {
			t.Fatalf("ready with %d requests queued and max_batch_size 4", i)
		}
		submit(t, b, req(1, 4))
	}
	if !b.ready() {
		t.Fatal("not ready with max_batch_size requests queued")
	}

	maxBatch := 8
	cfg := Config{MaxBatchSize: &maxBatch, DynamicBatching: DynamicBatching{MaxQueueSize: 2}}
	small := newBatcher(cfg.withDefaults(true))
	submit(t, small, req(1, 4))
	if small.ready() {
		t.Fatal("ready with one request in a queue of two")
	}
	submit(t, small, req(1, 4))
	if !small.ready() {
		t.Fatal("not ready with max_queue_size requests queued, fewer than max_batch_size")
	}
}

func TestBatcherTimedOutRequestFreesItsPlaceAtOnce(t *testing.T) {
	const size = 3
	fill := func(t *testing.T) *batcher {
		t.Helper()
		maxBatch := 8
		cfg := Config{MaxBatchSize: &maxBatch, DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Minute), MaxQueueSize: size}}
		return newBatcher(cfg.withDefaults(true))
	}
	t.Run("caller gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := fill(t)
			impatient := req(1, 4)
			submit(t, b, impatient, req(1, 4), req(1, 4))
			if err := b.submit(req(1, 4)); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("submit to a full queue: %v, want ErrQueueFull", err)
			}
			// The caller's wait, as Model.infer does it, under a 10ms timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			select {
			case <-impatient.done:
				t.Fatal("answered with no worker running")
			case <-ctx.Done():
				if !b.abandon(impatient) {
					t.Fatal("a queued request could not be abandoned")
				}
			}
			if n, _ := b.depth(); n != size-1 {
				t.Fatalf("%d queued after one was abandoned, want %d", n, size-1)
			}
			if err := b.submit(req(1, 4)); err != nil {
				t.Fatalf("submit after a request timed out: %v, want its place", err)
			}
			batch, err := b.next(nil, time.NewTimer(time.Hour), nil)
			if err != nil || len(batch) != size || slices.Contains(batch, impatient) {
				t.Fatalf("batch of %d (err %v), want the %d requests still waited for", len(batch), err, size)
			}
			if n, _ := b.depth(); n != 0 || b.abandoned.Load() != 0 {
				t.Fatalf("%d queued and %d abandoned counted, want none", n, b.abandoned.Load())
			}
		})
	})
	t.Run("deadline passes while workers are busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := fill(t)
			doomed := req(1, 4)
			doomed.deadline = time.Now().Add(10 * time.Millisecond)
			submit(t, b, doomed, req(1, 4), req(1, 4))
			time.Sleep(10 * time.Millisecond) // no worker looks at the queue
			if err := b.submit(req(1, 4)); err != nil {
				t.Fatalf("submit after a request expired: %v, want its place", err)
			}
			select {
			case r := <-doomed.done:
				if !errors.Is(r.err, ErrDeadlineExceeded) {
					t.Fatalf("expired request answered %v, want ErrDeadlineExceeded", r.err)
				}
			default:
				t.Fatal("the expired request was not answered")
			}
			if n, _ := b.depth(); n != size {
				t.Fatalf("%d queued, want %d", n, size)
			}
			b.mu.Lock()
			deadlines := b.deadlines
			b.mu.Unlock()
			if deadlines != 0 {
				t.Fatalf("%d queued requests counted with a deadline, want 0", deadlines)
			}
		})
	})
}
