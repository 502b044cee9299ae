package httpapi

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// goneAfter is how long a call runs before its connection is watched for
// the client leaving. net/http watches every request, with a goroutine
// and two deadline changes each; most calls end sooner than this, and a
// call a client leaves is cancelled (its queue place given up, its run
// skipped) at most about twice this late.
const goneAfter = 10 * time.Millisecond

// goneWatcher watches the connections of calls that have run for
// goneAfter. One sweeper goroutine, running only while calls are in
// flight, finds them: a timer per call would wake the runtime's network
// poller at every call, which costs more than the call's decoding.
type goneWatcher struct {
	mu       sync.Mutex
	calls    *goneWatch // the calls in flight, a list linked through them
	sweeping bool
}

// watch returns the watch of a call's connection: its context ends when
// the client closes conn, or when the call's owner cancels it once the
// call is over (a request's context holds what the call leased, as an
// on-demand model's version, until it ends). The watch peeks at the
// connection, reading nothing: bytes that arrive are the next request's,
// and end the watch. since is when the call began. Call end before the
// server reads from conn again.
func (g *goneWatcher) watch(conn net.Conn, since time.Time) *goneWatch {
	w := new(goneWatch)
	g.watchWith(w, conn, since)
	return w
}

// watchWith is watch with w, a watch that has ended or never begun, for
// the call's owner to reuse: once end has returned, nothing refers to it.
func (g *goneWatcher) watchWith(w *goneWatch, conn net.Conn, since time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	*w = goneWatch{ctx: ctx, cancel: cancel, conn: conn, g: g, since: since}
	g.mu.Lock()
	w.next = g.calls
	if w.next != nil {
		w.next.prev = w
	}
	g.calls, w.listed = w, true
	if !g.sweeping {
		g.sweeping = true
		go g.sweep()
	}
	g.mu.Unlock()
}

// sweep starts the watch of every call that has run for goneAfter, every
// goneAfter, until no call is in flight.
func (g *goneWatcher) sweep() {
	var due []*goneWatch
	for {
		time.Sleep(goneAfter)
		now := time.Now()
		g.mu.Lock()
		if g.calls == nil {
			g.sweeping = false
			g.mu.Unlock()
			return
		}
		clear(due)
		due = due[:0]
		for w := g.calls; w != nil; w = w.next {
			if w.watching == nil && now.Sub(w.since) >= goneAfter {
				w.watching = make(chan struct{})
				due = append(due, w)
			}
		}
		g.mu.Unlock()
		for _, w := range due {
			go w.run()
		}
	}
}

// goneWatch is one call's watch of its connection.
type goneWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	conn   net.Conn
	g      *goneWatcher
	since  time.Time
	// handed is set once the bridged handler owns the watch.
	handed atomic.Bool
	// watching is closed when the watch returns; nil before it starts.
	// The sweeper sets it under g.mu.
	watching chan struct{}
	// stopped is set, under g.mu, once stop has begun.
	stopped bool
	// bodyRead is set once the request's body has been read: a deadline
	// met after it is the body's, and the watch outlives it.
	bodyRead atomic.Bool
	// prev and next link the watcher's calls; listed is set while the
	// watch is among them. All three are g.mu's.
	prev, next *goneWatch
	listed     bool
}

// run peeks at the connection until the client closes it (the context
// ends), a byte arrives, or stop cuts the wait with a past deadline. The
// body's read deadline, still set on the connection, does not end the
// watch once the body is read: the wait goes on with none, so that a call
// running past the read timeout is still watched.
func (w *goneWatch) run() {
	defer close(w.watching)
	rc := rawConn(w.conn)
	if rc == nil {
		return
	}
	for {
		gone := false
		err := rc.Read(func(fd uintptr) bool {
			var wait bool
			gone, wait = peek(fd)
			return !wait // nothing yet: wait for the descriptor
		})
		if gone {
			w.cancel()
			return
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !w.bodyRead.Load() {
			return // a byte came, or the body's own read times out
		}
		w.g.mu.Lock()
		stopped := w.stopped
		if !stopped {
			_ = w.conn.SetReadDeadline(time.Time{})
		}
		w.g.mu.Unlock()
		if stopped {
			return
		}
	}
}

// check cancels the context now if the client has closed the connection
// or reset it, or the server has closed it after a write failed: a
// non-blocking peek, for a write that failed before the watch saw the
// close.
func (w *goneWatch) check() {
	rc := rawConn(w.conn)
	if rc == nil {
		return
	}
	gone := false
	if err := rc.Control(func(fd uintptr) { gone, _ = peek(fd) }); err != nil {
		gone = true // closed already: the server gave up writing to it
	}
	if gone {
		w.cancel()
	}
}

// stop ends the watch, waiting for it if it started; the context stays
// until cancel.
func (w *goneWatch) stop() {
	w.g.mu.Lock()
	w.unlist()
	w.stopped = true
	watching := w.watching
	w.g.mu.Unlock()
	if watching != nil {
		// A past deadline ends the wait; the server sets its own before it
		// reads the next request.
		_ = w.conn.SetReadDeadline(time.Unix(1, 0))
		<-watching
	}
}

// unlist takes the watch out of its watcher's calls. g.mu is held.
func (w *goneWatch) unlist() {
	if !w.listed {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		w.g.calls = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
}

// end ends the watch (stop) and then the context (cancel): the call is
// over.
func (w *goneWatch) end() {
	w.stop()
	w.cancel()
}

// peek looks at the connection's next byte without taking it, without
// waiting: gone when the client has closed it (EOF) or reset it, wait
// when nothing has come yet.
func peek(fd uintptr) (gone, wait bool) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return false, true
	case err != nil, n == 0:
		return true, false
	}
	return false, false
}

// rawConn is conn's descriptor access, through the wrappers that expose
// the connection they wrap (NetConn), or nil.
func rawConn(conn net.Conn) syscall.RawConn {
	for conn != nil {
		if sc, ok := conn.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = u.NetConn()
	}
	return nil
}
