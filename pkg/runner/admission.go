package runner

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// admission is a model version's entry: it lets a bounded number of
// requests into the version's work at once (decoding, the batcher's queue,
// execution) and holds the others, undecoded, in arrival order,
// up to max_queue_size of them; a request beyond that is refused at once.
//
// The bound is a running batch per instance and one forming batch per
// instance (no more than max_queue_size requests, either of them): enough to keep every
// instance busy with batches as large as the load allows. max_queue_size
// bounds the requests waiting, here and in the batcher's queue together:
// those forming a batch count against it, the rest wait here. For the
// moment between a batch's end and its worker taking the next one, a
// request admitted to run waits in the batcher's queue too: the queue
// then reads max_queue_size and one more per instance. Holding the rest
// undecoded, and refusing past max_queue_size before a body is read
// (Admit, which a front end asks first), is what keeps a flooded model
// from taking the server's CPU from the others: a waiting request costs a
// parked goroutine and its body's bytes, where one admitted costs its
// decoding, copies and encoding. A front end reads a body before the
// request enters, so that a client slow to send it holds no place. It is the
// concurrency limit of Envoy's adaptive concurrency filter and of
// Netflix's concurrency-limits, fixed at what batching needs.
//
// Admission takes no lock while a place is free; a request that must wait
// takes one to join the line, and leaving takes it to hand its place to
// the first in line.
type admission struct {
	slots chan struct{} // a token per request admitted
	// maxWaiting is max_queue_size less the places of the forming batch:
	// more waiting are refused.
	maxWaiting int
	forming    int // places of the forming batches

	mu      sync.Mutex
	waiters []*waiter    // in arrival order
	inLine  atomic.Int64 // len(waiters), for full to read without the lock
}

// full reports, without the lock, whether a request arriving now would be
// refused: every place taken and max_queue_size already waiting.
func (a *admission) full() bool {
	return len(a.slots) == cap(a.slots) && a.inLine.Load() >= int64(a.maxWaiting)
}

// errFull is the refusal of a request past max_queue_size.
func (m *Model) errFull() error {
	a := m.admission
	return fmt.Errorf("model %q version %d: %w: max_queue_size %d reached (%d requests forming a batch, %d waiting for a place)",
		m.meta.Name, m.meta.Version, ErrQueueFull, a.maxWaiting+a.forming, a.forming, a.maxWaiting)
}

type waiter struct {
	since    time.Time
	admitted chan struct{} // closed when leave hands it a place
}

func newAdmission(cfg Config) *admission {
	// A batch forms from the batcher's queue, so it holds no more requests
	// than max_queue_size: places for more would admit requests only for
	// the queue to refuse them, their bodies read.
	batch := max(min(*cfg.MaxBatchSize, cfg.DynamicBatching.MaxQueueSize), 1)
	running := batch * max(cfg.Instances, 1)
	forming := min(running, cfg.DynamicBatching.MaxQueueSize)
	return &admission{
		slots:      make(chan struct{}, running+forming),
		maxWaiting: cfg.DynamicBatching.MaxQueueSize - forming,
		forming:    forming,
	}
}

// A Place is a request's place in a model version's work, which
// Model.Enter takes. It is given back once, by whichever comes first: the
// worker that answers the request's batch, before the caller is woken
// (Request.Place), or Leave. An answer that waits for the CPU to encode it
// then holds no place that a request able to run could take: on a
// saturated core a woken caller can wait many milliseconds for its turn.
// The zero Place holds nothing; a Place is not reused.
type Place struct {
	a    *admission
	held atomic.Bool
}

// Leave gives the place back, if it is still held: to the first request
// in line, or free. It is safe on a nil Place and from any goroutine.
func (p *Place) Leave() {
	if p != nil && p.held.CompareAndSwap(true, false) {
		p.a.leave()
	}
}

// Enter admits a request into the model version's work, waiting for a
// place while fewer than max_queue_size others wait, for as long as ctx
// allows, and records the place taken in place. It returns how long the
// request waited (the admission phase of its latency budget). The caller
// sets its Request.Place to place, and calls place.Leave once the request
// is answered (a no-op when its batch gave the place back). A text
// generator schedules its own sequences: Enter admits at once and place
// holds nothing. Errors: ErrModelNotReady (the version stopped serving), a
// wrapped ErrQueueFull, or ctx's error.
func (m *Model) Enter(ctx context.Context, place *Place) (time.Duration, error) {
	if err := m.Admit(); err != nil {
		return 0, err
	}
	a := m.admission
	if a == nil {
		return 0, nil
	}
	place.a = a
	select {
	case a.slots <- struct{}{}:
		place.held.Store(true)
		return 0, nil
	default:
	}
	a.mu.Lock()
	select { // a place freed since: leave frees one only with no one in line
	case a.slots <- struct{}{}:
		a.mu.Unlock()
		place.held.Store(true)
		return 0, nil
	default:
	}
	if len(a.waiters) >= a.maxWaiting {
		a.mu.Unlock()
		return 0, m.errFull()
	}
	w := &waiter{since: time.Now(), admitted: make(chan struct{})}
	a.waiters = append(a.waiters, w)
	a.inLine.Store(int64(len(a.waiters)))
	a.mu.Unlock()

	var why error
	select {
	case <-w.admitted:
		place.held.Store(true)
		return time.Since(w.since), nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-m.closing:
		why = fmt.Errorf("%w: model %q version %d was unloaded", ErrModelNotReady, m.meta.Name, m.meta.Version)
	}
	a.mu.Lock()
	if i := a.index(w); i >= 0 {
		a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
		a.inLine.Store(int64(len(a.waiters)))
		a.mu.Unlock()
	} else { // handed a place as it gave up: pass it on
		a.mu.Unlock()
		a.leave()
	}
	waited := time.Since(w.since)
	if ctx.Err() != nil {
		why = fmt.Errorf("model %q version %d: waited %v for admission: %w", m.meta.Name, m.meta.Version, waited.Round(time.Microsecond), why)
	}
	return waited, why
}

func (a *admission) index(w *waiter) int {
	for i, x := range a.waiters {
		if x == w {
			return i
		}
	}
	return -1
}

// leave gives back a place: to the first request in line, or free.
func (a *admission) leave() {
	a.mu.Lock()
	if len(a.waiters) > 0 {
		w := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.inLine.Store(int64(len(a.waiters)))
		a.mu.Unlock()
		close(w.admitted) // the place passes on, still taken
		return
	}
	<-a.slots
	a.mu.Unlock()
}

// waiting returns the requests waiting for admission and how long the
// first of them has waited.
func (a *admission) waiting() (int, time.Duration) {
	if a == nil {
		return 0, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.waiters) == 0 {
		return 0, 0
	}
	return len(a.waiters), time.Since(a.waiters[0].since)
}
