// Package netlimit bounds a server's connections: a Listener that, at its
// limit, makes room by closing its longest-idle HTTP keep-alive
// connection (as nginx does when worker_connections runs out) and
// otherwise closes the new connection at once (as Envoy's connection
// limits and HAProxy's maxconn do, rather than leaving it in the kernel's
// backlog where it waits for a slot that may never come). It tracks its
// connections' HTTP states, so that eviction and a drain close only idle
// ones without cutting a request a client has just written, and it can
// close without resetting the connections the kernel has queued
// (Quiesce).
//
// Several listeners can share one Budget: the inference ports share theirs,
// while the metrics and admin ports have budgets of their own, which is
// the reserve that keeps them answerable whatever the inference ports are
// sent.
package netlimit

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Budget is a bound on open connections, shared by the listeners given it.
type Budget struct {
	limit int64
	open  atomic.Int64
	// rejected counts the connections closed at accept for want of room;
	// evicted the idle ones closed to make room for a new one.
	rejected, evicted atomic.Int64

	mu        sync.Mutex
	listeners []*Listener // those sharing the budget, for eviction
}

// NewBudget returns a budget of limit open connections (at least 1).
func NewBudget(limit int) *Budget { return &Budget{limit: int64(max(limit, 1))} }

// Limit returns the budget's bound, in connections.
func (b *Budget) Limit() int { return int(b.limit) }

// Open returns the connections open now.
func (b *Budget) Open() int { return int(b.open.Load()) }

// Rejected returns the connections closed at accept so far.
func (b *Budget) Rejected() int64 { return b.rejected.Load() }

// Evicted returns the idle connections closed so far to make room for a
// new one.
func (b *Budget) Evicted() int64 { return b.evicted.Load() }

// Listener accepts connections within a Budget and keeps the set it
// accepted, for Drain.
type Listener struct {
	net.Listener
	budget *Budget

	mu    sync.Mutex
	conns map[*Conn]struct{}
}

// Listen wraps ln so that its connections count against b.
func Listen(ln net.Listener, b *Budget) *Listener {
	l := &Listener{Listener: ln, budget: b, conns: map[*Conn]struct{}{}}
	b.mu.Lock()
	b.listeners = append(b.listeners, l)
	b.mu.Unlock()
	return l
}

// Accept returns the next connection within the budget. At the budget's
// limit it first closes the longest-idle HTTP connection, on any listener
// sharing the budget, that has been idle for evictAge and holds no
// request (see Drain for what that means), and takes its place;
// with none, the new connection is closed at once with a reset
// (SO_LINGER 0, so that it holds no descriptor in TIME_WAIT), and Accept
// waits for the next.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.budget.open.Add(1) > l.budget.limit && !l.budget.evictIdle() {
			l.budget.open.Add(-1)
			l.budget.rejected.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		conn := &Conn{Conn: c, l: l, accepted: time.Now()}
		conn.idleSince.Store(conn.accepted.UnixNano())
		conn.state.Store(int32(http.StateNew))
		l.mu.Lock()
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		return conn, nil
	}
}

// ConnState is an http.Server's ConnState hook that keeps each
// connection's state, for Drain.
func ConnState(c net.Conn, st http.ConnState) {
	if conn, ok := c.(*Conn); ok {
		if st == http.StateIdle {
			conn.read.Store(false)
			conn.idleSince.Store(time.Now().UnixNano())
		}
		conn.state.Store(int32(st))
		conn.tracked.Store(true)
	}
}

// evictAge is how long a connection must have been idle for eviction to
// take it. A busy keep-alive client's connection is idle for microseconds
// between a response and its next request, which a close in that instant
// would cut; one idle for a second is a client at rest.
const evictAge = time.Second

// evictIdle closes the connection, on any of the budget's listeners, that
// has been idle longest, at least evictAge, among those that hold no
// request, and reports whether it closed one; the caller keeps the place
// it frees. Only connections whose HTTP states ConnState tracks qualify:
// a gRPC connection multiplexes its calls and is never idle to a
// listener. It scans every connection, which happens only at the limit.
func (b *Budget) evictIdle() bool {
	now := time.Now()
	b.mu.Lock()
	listeners := b.listeners
	b.mu.Unlock()
	var oldest *Conn
	for _, l := range listeners {
		l.mu.Lock()
		for c := range l.conns {
			if c.idle(now) && now.Sub(time.Unix(0, c.idleSince.Load())) >= evictAge &&
				(oldest == nil || c.idleSince.Load() < oldest.idleSince.Load()) {
				oldest = c
			}
		}
		l.mu.Unlock()
	}
	if oldest == nil || oldest.read.Load() || oldest.pending() {
		return false
	}
	if !oldest.release() {
		return false // closed meanwhile: its own Close gave its place back
	}
	b.open.Add(-1) // its place: the caller's new connection holds one already
	_ = oldest.Conn.Close()
	b.evicted.Add(1)
	return true
}

// Drain closes the listener's idle HTTP connections (those between
// requests, and those accepted with nothing sent for newGrace) that have
// read nothing since they went idle and whose kernel receive buffer is empty,
// every poll until none is left or stop is closed, and returns the
// connections still open. A connection that has read, or has bytes
// waiting, holds a request the client has written: it is left to its
// server, which answers it (with "Connection: close" while draining) and
// closes it. Close the listener first, so that no connection is added.
//
// net/http's own Shutdown closes every connection in StateIdle, and a
// keep-alive connection whose next request (headers and a body of a few
// kilobytes) arrived in one read stays in StateIdle while its handler
// runs: Shutdown cuts it. Drain tells such a connection by its reads.
//
// The check and the close are a few microseconds apart: a request
// written between the two is cut. That is the window every HTTP/1.1
// server has (the protocol has no way to close an idle connection
// gracefully); Drain keeps it to the check itself.
func (l *Listener) Drain(poll time.Duration, stop <-chan struct{}) int {
	for {
		l.mu.Lock()
		var idle []*Conn
		for c := range l.conns {
			if st := http.ConnState(c.state.Load()); st == http.StateIdle || st == http.StateNew {
				idle = append(idle, c)
			}
		}
		left := len(l.conns)
		l.mu.Unlock()
		now := time.Now()
		for _, c := range idle {
			if http.ConnState(c.state.Load()) == http.StateNew && now.Sub(c.accepted) < newGrace {
				continue
			}
			if !c.read.Load() && !c.pending() {
				_ = c.Close()
				left--
			}
		}
		if left == 0 {
			return 0
		}
		select {
		case <-stop:
			return left
		case <-time.After(poll):
		}
	}
}

// Conn is a connection a Listener accepted. It leaves the budget when
// closed.
type Conn struct {
	net.Conn
	l      *Listener
	closed atomic.Bool
	state  atomic.Int32 // http.ConnState
	read   atomic.Bool  // bytes read since the state turned idle
	// tracked is set once ConnState has seen the connection: its HTTP
	// state is known.
	tracked atomic.Bool
	// idleSince is when it last turned idle (Unix nanoseconds), or was
	// accepted.
	idleSince atomic.Int64
	// accepted is when Accept returned it: a connection that has sent
	// nothing yet gets newGrace to send its first request.
	accepted time.Time
	// writeDeadline is the write deadline set (Unix nanoseconds), 0
	// before the first write.
	writeDeadline atomic.Int64
}

// idle reports whether the connection sits between requests (or has sent
// nothing for newGrace since it was accepted) with nothing read since:
// closing it may race a request the client writes now, but cuts none it
// has written (the caller checks pending last).
func (c *Conn) idle(now time.Time) bool {
	if !c.tracked.Load() || c.read.Load() {
		return false
	}
	switch http.ConnState(c.state.Load()) {
	case http.StateIdle:
		return true
	case http.StateNew:
		return now.Sub(c.accepted) >= newGrace
	}
	return false
}

// newGrace is how long Drain leaves a connection that has sent nothing
// since it was accepted: a client writes its first request right after
// connecting, but a busy client may take a moment (net/http's own
// Shutdown leaves them 5 s).
const newGrace = time.Second

// Read reads from the connection, noting that it read.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.read.Load() {
		c.read.Store(true)
	}
	return n, err
}

// sendTimeout bounds each write to a connection, as nginx's send_timeout
// (60 s) bounds the time between two successive writes: a client that
// stops reading, its receive window full, holds its connection, a
// goroutine and its response's buffers only this long, while a stream it
// keeps reading is never cut. A variable for tests.
var sendTimeout = 60 * time.Second

// Write writes to the connection, failing once sendTimeout passes with
// no byte taken: a large body written in one call gets a fresh
// sendTimeout each time the client takes some of it. The deadline moves
// only once it has aged by deadlineSlack, not at every write: moving it
// resets the runtime's timer, which costs a keep-alive connection more
// than its answer's other work, and a stall is then cut between
// sendTimeout less deadlineSlack and sendTimeout.
func (c *Conn) Write(b []byte) (int, error) {
	written := 0
	for {
		c.extendWriteDeadline()
		n, err := c.Conn.Write(b[written:])
		written += n
		if err != nil && n > 0 && isTimeout(err) {
			c.writeDeadline.Store(0) // progress within the last sendTimeout: not stalled
			continue
		}
		return written, err
	}
}

// deadlineSlack is how far the write deadline may lag sendTimeout past
// the last write before it is moved: 1/64 of it (about a second of 60 s).
func deadlineSlack() time.Duration { return sendTimeout / 64 }

// extendWriteDeadline sets the write deadline to sendTimeout from now,
// unless the one set is within deadlineSlack of it.
func (c *Conn) extendWriteDeadline() {
	now := time.Now()
	want := now.Add(sendTimeout).UnixNano()
	if want-c.writeDeadline.Load() < int64(deadlineSlack()) {
		return
	}
	if c.Conn.SetWriteDeadline(now.Add(sendTimeout)) == nil {
		c.writeDeadline.Store(want)
	}
}

// isTimeout reports whether err is a net.Error that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the connection and gives its place back, once. Where the
// kernel holds bytes the server never read (the rest of a request whose
// answer, a 431, 413 or a shed 429, ended the connection before its
// headers or body were read whole), it lingers first (linger), so that
// the close does not reset the connection and destroy the answer before
// the client reads it.
func (c *Conn) Close() error {
	if !c.closed.Load() && c.pending() {
		c.linger()
	}
	return c.abort()
}

// abort closes the connection at once and gives its place back, once.
func (c *Conn) abort() error {
	err := c.Conn.Close()
	if c.release() {
		c.l.budget.open.Add(-1)
	}
	return err
}

// lingerTime and lingerBytes bound a lingering close: how long, and how
// many bytes, the server reads and discards of what a client still sends
// after the answer that ends its connection. A client that reads its
// answer and closes ends the linger at once; one that keeps sending past
// either bound is reset. nginx's lingering_close reads for up to 30 s
// (lingering_time) and net/http waits 500 ms after its half-close
// (rstAvoidanceDelay); 2 s covers a client on any network that writes
// before it reads, and the bytes bound keeps a hostile one from making
// the server read for it. Variables for tests.
var (
	lingerTime  = 2 * time.Second
	lingerBytes = int64(4 << 20)
)

// linger half-closes the connection, so that the client reads the answer
// and then the end, and reads and discards what the client still sends
// until it closes its side, lingerTime passes or lingerBytes are read.
// Closing a socket with unread bytes makes the kernel answer with a reset
// (RFC 1122, 4.2.2.13), which a client can take before the answer it
// was sent: a client that writes its whole request before reading (most
// do) then reports a write error, never the 431 or 413 that named its
// fault.
func (c *Conn) linger() {
	if c.CloseWrite() != nil {
		return
	}
	if c.Conn.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return
	}
	var buf [16 << 10]byte
	for read := int64(0); read < lingerBytes; {
		n, err := c.Conn.Read(buf[:])
		read += int64(n)
		if err != nil {
			return
		}
	}
}

// release takes the connection out of its listener's set, once, and
// reports whether this call did.
func (c *Conn) release() bool {
	if !c.closed.CompareAndSwap(false, true) {
		return false
	}
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return true
}

// CloseWrite half-closes the connection, where it can, as net/http does
// before closing a connection whose response ends it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// pending reports whether the kernel holds bytes the connection's reader
// has not taken: a non-blocking MSG_PEEK, made beside any read in
// progress (SyscallConn's Control takes no read lock).
func (c *Conn) pending() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}

// ReadSince reports whether the connection has read anything since it was
// accepted or its HTTP state last turned idle (ConnState).
func (c *Conn) ReadSince() bool { return c.read.Load() }

// NetConn returns the connection the listener accepted, as tls.Conn's
// NetConn does: for what needs its descriptor.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// CloseAll closes every connection the listener holds, requests and all:
// the end of a shutdown whose grace period ran out, so at once, with no
// linger.
func (l *Listener) CloseAll() {
	l.mu.Lock()
	conns := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.abort()
	}
}
