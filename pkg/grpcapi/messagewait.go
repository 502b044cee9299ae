package grpcapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/tap"
)

// MessageWait bounds a call's wait for its request message, from its
// headers, as the HTTP port's read timeout bounds a body from the end of
// its headers: a client that opens calls and never sends their messages
// (or never ends them) holds a stream, a goroutine and its share of the
// receive budget this long at most, where grpc-go alone would hold them
// for as long as the connection lives (a call's own deadline,
// grpc-timeout, is the client's to set, and keepalive pings keep an idle
// connection open). A call whose message does not come in time ends with
// DEADLINE_EXCEEDED. The wait ends for a unary or server-streaming call
// once its message is in (Arrived, from the interceptors); a call that
// streams its requests (ModelStreamInfer) may rest between them, so its
// wait ends as it starts.
//
// The calls waiting are kept in arrival order, which is their deadlines'
// order, and one timer sweeps them every tick while any is kept, rather
// than a timer per call: a call costs its cancelable context and a place
// in a slice, and a call that ended or got its message is dropped at the
// next sweep, or sooner when the slice has doubled since it was last
// compacted, so that what is kept is about the calls still waiting.
type MessageWait struct {
	timeout, tick time.Duration
	expired       atomic.Int64

	mu        sync.Mutex
	calls     []*waiting // in arrival order
	compactAt int        // the length at which Tap drops the calls done
	timer     *time.Timer
	armed     bool
}

// minCompact is the fewest calls kept before Tap compacts them.
const minCompact = 256

// NewMessageWait returns a bound of timeout on each call's wait for its
// request message (at least a millisecond); a call ends within a quarter
// of the bound (at most a second) after it.
func NewMessageWait(timeout time.Duration) *MessageWait {
	timeout = max(timeout, time.Millisecond)
	w := &MessageWait{timeout: timeout, tick: min(timeout/4, time.Second), compactAt: minCompact}
	w.timer = time.AfterFunc(time.Hour, w.sweep)
	w.timer.Stop()
	return w
}

// Expired returns the calls ended so far because their message did not
// come in time.
func (w *MessageWait) Expired() int64 { return w.expired.Load() }

// Tap is a grpc.InTapHandle: it gives each call a context that ends when
// the call's message has not arrived within the bound.
func (w *MessageWait) Tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	c := &waiting{since: time.Now()}
	c.Context, c.cancel = context.WithCancel(ctx)
	w.mu.Lock()
	if len(w.calls) >= w.compactAt {
		w.keep(time.Time{}, nil)
	}
	w.calls = append(w.calls, c)
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.tick)
	}
	w.mu.Unlock()
	return c, nil
}

// sweep ends the calls past the bound, drops those done, and arms the
// timer again while any is kept.
func (w *MessageWait) sweep() {
	now := time.Now()
	var due []*waiting
	w.mu.Lock()
	due = w.keep(now, due)
	if len(w.calls) > 0 {
		w.timer.Reset(w.tick)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for _, c := range due {
		c.expire(w)
	}
}

// keep drops the calls that got their message or ended and, when now is
// set, those past the bound, which it appends to due and returns. w.mu
// is held.
func (w *MessageWait) keep(now time.Time, due []*waiting) []*waiting {
	kept := w.calls[:0]
	for _, c := range w.calls {
		switch {
		case c.state.Load() != stateWaiting || c.Context.Err() != nil:
		case !now.IsZero() && now.Sub(c.since) >= w.timeout:
			due = append(due, c)
		default:
			kept = append(kept, c)
		}
	}
	clear(w.calls[len(kept):])
	w.calls = kept
	w.compactAt = max(2*len(kept), minCompact)
	return due
}

// Arrived ends the wait of the call whose context is ctx (or derives
// from one Tap gave): its message is in. It is cheap to call more than
// once, and does nothing for a context Tap did not give.
func Arrived(ctx context.Context) {
	if c, ok := ctx.Value(waitingKey{}).(*waiting); ok && c.state.Load() == stateWaiting {
		c.state.CompareAndSwap(stateWaiting, stateArrived)
	}
}

// waiting is a call's context while it waits for its message.
type waiting struct {
	context.Context // canceled when the wait expires, or with the call
	cancel          context.CancelFunc
	since           time.Time
	state           atomic.Int32 // stateWaiting until its message or the bound, whichever is first
}

const (
	stateWaiting int32 = iota
	stateArrived
	stateExpired
)

type waitingKey struct{}

// expire ends the call: its message did not come in time. A call whose
// message came since the sweep looked is left alone.
func (c *waiting) expire(w *MessageWait) {
	if c.state.CompareAndSwap(stateWaiting, stateExpired) {
		w.expired.Add(1)
		c.cancel()
	}
}

// Err reports context.DeadlineExceeded once the wait expired, which
// grpc-go answers as DEADLINE_EXCEEDED: the bound is a deadline on the
// message, not a cancellation by the client.
func (c *waiting) Err() error {
	if c.state.Load() == stateExpired {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}

func (c *waiting) Value(key any) any {
	if key == (waitingKey{}) {
		return c
	}
	return c.Context.Value(key)
}
