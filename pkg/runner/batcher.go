package runner

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/clock"
	"github.com/infer-serving/infer/pkg/tensor"
)

// pending is one request from the moment it is queued until its result is
// delivered.
type pending struct {
	inputs   []tensor.Tensor // in the model's input order
	outputs  []int           // indices of the requested outputs; nil means all
	rows     int64           // size along the batch dimension (1 if unbatched)
	priority int             // queue index: 0 is the highest priority
	enqueued time.Time
	deadline time.Time // zero: none

	// state moves from queued to exactly one of taken (by a worker, which
	// will answer, or by the batcher when it expires) or abandoned (by the
	// caller, who stopped waiting). It changes only under the batcher's
	// lock; it is atomic so that tests and readers outside it see it whole.
	state atomic.Int32
	done  chan result // buffered: the answering side never blocks
	place *Place      // given back as the request is answered
	gone  atomic.Bool // the caller stopped waiting (Model.abandon), taken or not
}

const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

type result struct {
	resp *Response
	err  error
}

// answer gives back the request's place in its version's work, then
// hands it its result.
func (p *pending) answer(resp *Response, err error) {
	p.place.Leave()
	p.done <- result{resp, err}
}

// outputCount returns how many outputs p asked for, of total.
func (p *pending) outputCount(total int) int {
	if p.outputs == nil {
		return total
	}
	return len(p.outputs)
}

// output returns the model index of the i-th output p asked for.
func (p *pending) output(i int) int {
	if p.outputs == nil {
		return i
	}
	return p.outputs[i]
}

// compatible reports whether p and q can share a batch: every input's
// dimensions after the batch dimension are equal, except those of ragged
// inputs, which the instance pads to the batch's longest.
func (b *batcher) compatible(p, q *pending) bool {
	for i := range p.inputs {
		if b.ragged != nil && b.ragged[i] {
			continue
		}
		if !slices.Equal(p.inputs[i].Shape[1:], q.inputs[i].Shape[1:]) {
			return false
		}
	}
	return true
}

// batcher holds one model version's queue and decides when and how queued
// requests form a batch, following Triton's dynamic batcher: a batch leaves
// when it reaches max_batch_size (or the largest preferred size the queue
// can fill), when the oldest request has waited max_queue_delay, or at once
// when the delay is zero. Requests of different shapes never share a batch;
// the oldest request of the highest priority leads, and later compatible
// requests may join it ahead of incompatible ones.
//
// Workers pull batches with next, so a batch forms while every instance is
// busy and leaves the moment one is free: under load, batches grow by
// themselves with no delay configured.
type batcher struct {
	maxBatch  int64 // 0: batching off, one request per execution
	delay     time.Duration
	preferred []int64 // ascending
	maxQueue  int
	ragged    []bool // per input: padded per batch, so its length may differ

	mu     sync.Mutex
	queues [][]*pending // one FIFO per priority level, highest first
	n      int          // requests in queues
	closed bool
	// idle counts the workers waiting in next for the queue to change, and
	// need is how many more rows their batch lacks (1 while the queue is
	// empty). An arrival wakes a waiting worker only when it meets the need
	// or carries a deadline, which may fall before the worker's wake-up:
	// the arrivals that cannot change a worker's decision leave it asleep,
	// and with every worker busy, submitting touches nothing but the queue.
	idle int
	need int64
	// deadlines counts the queued requests that carry a deadline, and
	// abandoned those whose callers stopped waiting that are still in the
	// queues' slices: n no longer counts them, so they hold no place
	// against max_queue_size, and the next batch formed removes them.
	// While both are zero nothing queued can have gone, and forming a batch
	// reads no more of the queue than the batch it takes.
	deadlines int
	// saturated is n >= maxQueue with no deadline to free a place, kept by
	// the two places that change n, for full to read without the lock.
	saturated atomic.Bool
	abandoned atomic.Int64
	arrived   chan struct{} // a token when a waiting worker should look
	closing   chan struct{} // closed by close
}

func newBatcher(cfg Config) *batcher {
	b := &batcher{
		maxBatch: int64(*cfg.MaxBatchSize),
		delay:    time.Duration(cfg.DynamicBatching.MaxQueueDelay),
		maxQueue: cfg.DynamicBatching.MaxQueueSize,
		queues:   make([][]*pending, cfg.DynamicBatching.PriorityLevels),
		arrived:  make(chan struct{}, 1),
		closing:  make(chan struct{}),
	}
	for _, p := range cfg.DynamicBatching.PreferredBatchSizes {
		b.preferred = append(b.preferred, int64(p))
	}
	return b
}

// submit queues p, or fails at once with ErrQueueFull or ErrClosed. A
// full queue first answers the requests whose deadline has passed, which
// no worker may have looked at while every instance was busy: a request
// that timed out never keeps a later one out.
func (b *batcher) submit(p *pending) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	var expired []*pending
	if b.n >= b.maxQueue && b.deadlines > 0 {
		b.drop(time.Now(), &expired)
	}
	if b.n >= b.maxQueue {
		b.mu.Unlock()
		expire(expired)
		return fmt.Errorf("%w: max_queue_size %d reached (requests queued for a batch)", ErrQueueFull, b.maxQueue)
	}
	b.queues[p.priority] = append(b.queues[p.priority], p)
	b.n++
	if !p.deadline.IsZero() {
		b.deadlines++
	}
	b.saturated.Store(b.n >= b.maxQueue && b.deadlines == 0)
	wake := false
	if b.idle > 0 {
		b.need -= p.rows
		wake = b.need <= 0 || !p.deadline.IsZero()
	}
	b.mu.Unlock()
	expire(expired)
	if wake {
		b.signal()
	}
	return nil
}

// expire answers requests whose deadline passed while they were queued.
func expire(ps []*pending) {
	for _, p := range ps {
		p.answer(nil, fmt.Errorf("%w: waited %v in the queue", ErrDeadlineExceeded, p.deadline.Sub(p.enqueued).Round(time.Microsecond)))
	}
}

// ready reports whether the queue already holds the next batch: at least
// max_batch_size requests (one when batching is off), or a full queue
// (max_queue_size).
func (b *batcher) ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.n) >= max(b.maxBatch, 1) || b.n >= b.maxQueue
}

func (b *batcher) signal() {
	select {
	case b.arrived <- struct{}{}:
	default:
	}
}

// abandon withdraws p, whose caller stopped waiting, unless a worker has
// already taken it, and reports whether it did. p leaves the count of
// queued requests at once, so its place goes to the next submission; the
// next batch formed removes it from the queue's slice.
func (b *batcher) abandon(p *pending) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !p.state.CompareAndSwap(stateQueued, stateAbandoned) {
		return false
	}
	b.leave(p)
	b.abandoned.Add(1)
	return true
}

// close stops new submissions; queued requests are still handed out, and
// next reports ErrClosed once the queue is empty.
func (b *batcher) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.closing)
	}
}

// depth returns the number of queued requests and when the oldest was
// queued (zero when none is).
// full reports whether submit would refuse a request now: the queue is at
// max_queue_size and none of it can expire to make room. It takes no lock:
// a front end asks it for every request, before reading the body.
func (b *batcher) full() bool { return b.saturated.Load() }

func (b *batcher) depth() (int, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var oldest time.Time
	for _, q := range b.queues {
		if len(q) > 0 && (oldest.IsZero() || q[0].enqueued.Before(oldest)) {
			oldest = q[0].enqueued
		}
	}
	return b.n, oldest
}

// next blocks until a batch is ready and returns it, appended to dst[:0].
// Requests whose deadline passes while queued are answered with
// ErrDeadlineExceeded here and never returned. timer is the caller's own,
// reused across calls. next returns ErrClosed once the batcher is closed
// and drained, and an empty batch when wake (the caller's own, nil for
// none) fires while it waits.
func (b *batcher) next(dst []*pending, timer *time.Timer, wake <-chan struct{}) ([]*pending, error) {
	var expired []*pending
	waiting := false
	for {
		b.mu.Lock()
		if waiting {
			b.idle--
			waiting = false
		}
		batch, wait, need := b.form(time.Now(), dst[:0], &expired)
		more, closed := b.n > 0, b.closed
		if len(batch) == 0 && !closed {
			b.idle++
			b.need = need
			waiting = true
		}
		b.mu.Unlock()

		expire(expired)
		expired = expired[:0]
		if len(batch) > 0 {
			if more {
				b.signal() // let another idle worker look at what is left
			}
			return batch, nil
		}
		if closed && !more {
			return nil, ErrClosed
		}
		if wait >= 0 && wait < clock.Coarse {
			b.waitShort(wait)
			continue
		}
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-b.arrived:
		case <-fire:
		case <-b.closing:
		case <-wake:
			timer.Stop()
			b.mu.Lock()
			b.idle--
			b.mu.Unlock()
			return dst[:0], nil
		}
		timer.Stop()
	}
}

// waitShort waits for d, or until something is queued or the batcher
// closes. Go's timers fire up to a millisecond late, far coarser than the
// 50 to 500 microsecond queue delays dynamic batching is tuned with, so
// the wait is slept in the kernel in slices, checking between them:
// precise to tens of microseconds without keeping a core busy.
func (b *batcher) waitShort(d time.Duration) {
	until := time.Now().Add(d)
	for {
		left := time.Until(until)
		if left <= 0 {
			return
		}
		select {
		case <-b.arrived:
			return
		case <-b.closing:
			return
		default:
			clock.Sleep(left)
		}
	}
}

// form drops abandoned and expired requests, then either takes a batch out
// of the queues (appended to dst) or returns how long to wait before the
// queue may be ready (-1: until something arrives) and how many more rows
// would make it ready now. b.mu is held.
func (b *batcher) form(now time.Time, dst []*pending, expired *[]*pending) ([]*pending, time.Duration, int64) {
	if b.deadlines > 0 || b.abandoned.Load() > 0 {
		b.drop(now, expired)
	}
	// The head is the oldest request of the highest priority; count the
	// rows that could join its batch, until they fill the largest batch
	// there can be.
	var head *pending
	var avail int64
	for _, q := range b.queues {
		for _, p := range q {
			if head == nil {
				head, avail = p, p.rows
			} else if b.compatible(p, head) {
				avail += p.rows
			}
			if b.maxBatch == 0 || avail >= b.maxBatch {
				break
			}
		}
		if head != nil && (b.maxBatch == 0 || avail >= b.maxBatch) {
			break
		}
	}
	if head == nil {
		return dst, -1, 1
	}

	// Unbatched models run one request at a time, in priority order.
	if b.maxBatch == 0 {
		return b.take(dst, head, head.rows), 0, 0
	}

	target := b.maxBatch
	for i := len(b.preferred) - 1; i >= 0; i-- {
		if b.preferred[i] <= avail {
			target = b.preferred[i]
			break
		}
	}
	target = max(target, head.rows)
	age := now.Sub(head.enqueued)
	if avail >= target || b.delay == 0 || age >= b.delay || b.closed {
		return b.take(dst, head, target), 0, 0
	}

	// Not ready: wake when the delay runs out, or sooner when a queued
	// request's deadline comes first, so it is answered on time.
	wait := b.delay - age
	if b.deadlines > 0 {
		for _, q := range b.queues {
			for _, p := range q {
				if !p.deadline.IsZero() {
					wait = min(wait, p.deadline.Sub(now))
				}
			}
		}
	}
	return dst, wait, target - avail
}

// drop removes the abandoned requests from the queues, and the expired
// ones, which it appends to expired to be answered. b.mu is held.
func (b *batcher) drop(now time.Time, expired *[]*pending) {
	for qi, q := range b.queues {
		kept := q[:0]
		for _, p := range q {
			switch {
			case p.state.Load() == stateAbandoned:
				b.abandoned.Add(-1) // abandon counted it out already
			case !p.deadline.IsZero() && !now.Before(p.deadline):
				p.state.Store(stateTaken)
				b.leave(p)
				*expired = append(*expired, p)
			default:
				kept = append(kept, p)
			}
		}
		clear(q[len(kept):])
		b.queues[qi] = kept
	}
}

// leave counts p out of the queue. b.mu is held.
func (b *batcher) leave(p *pending) {
	b.n--
	if !p.deadline.IsZero() {
		b.deadlines--
	}
	b.saturated.Store(b.n >= b.maxQueue && b.deadlines == 0)
}

// take moves requests compatible with head, head first, out of the queues
// into dst until the batch holds target rows or nothing more fits.
// b.mu is held.
func (b *batcher) take(dst []*pending, head *pending, target int64) []*pending {
	var rows int64
	for qi, q := range b.queues {
		if rows >= target {
			break
		}
		kept := q[:0]
		for i, p := range q {
			if rows >= target {
				kept = append(kept, q[i:]...) // the batch is full: keep the rest as it is
				break
			}
			if p.state.Load() == stateAbandoned {
				b.abandoned.Add(-1) // abandon counted it out already
				continue
			}
			fits := rows+p.rows <= target && (p == head || b.maxBatch > 0 && b.compatible(p, head))
			if !fits {
				kept = append(kept, p)
				continue
			}
			b.leave(p)
			p.state.Store(stateTaken)
			dst = append(dst, p)
			rows += p.rows
		}
		clear(q[len(kept):])
		b.queues[qi] = kept
	}
	return dst
}
