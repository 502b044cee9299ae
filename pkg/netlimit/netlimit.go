// Package netlimit bounds a server's connections: a Listener that closes,
// at once, every connection accepted beyond its limit (as Envoy's
// connection limits and HAProxy's maxconn do, rather than leaving it in the
// kernel's backlog where it waits for a slot that may never come), and
// that tracks its connections' HTTP states, so that a drain can close the
// idle ones without cutting a request a client has just written.
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
	// Rejected counts the connections closed at accept for want of room.
	rejected atomic.Int64
}

// NewBudget returns a budget of limit open connections (at least 1).
func NewBudget(limit int) *Budget { return &Budget{limit: int64(max(limit, 1))} }

// Limit returns the budget's bound, in connections.
func (b *Budget) Limit() int { return int(b.limit) }

// Open returns the connections open now.
func (b *Budget) Open() int { return int(b.open.Load()) }

// Rejected returns the connections closed at accept so far.
func (b *Budget) Rejected() int64 { return b.rejected.Load() }

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
	return &Listener{Listener: ln, budget: b, conns: map[*Conn]struct{}{}}
}

// Accept returns the next connection within the budget. A connection past
// it is closed at once with a reset (SO_LINGER 0, so that it holds no
// descriptor in TIME_WAIT), and Accept waits for the next.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.budget.open.Add(1) > l.budget.limit {
			l.budget.open.Add(-1)
			l.budget.rejected.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		conn := &Conn{Conn: c, l: l, accepted: time.Now()}
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
		}
		conn.state.Store(int32(st))
	}
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
		for _, c := range idle {
			if http.ConnState(c.state.Load()) == http.StateNew && time.Since(c.accepted) < newGrace {
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
	// accepted is when Accept returned it: a connection that has sent
	// nothing yet gets newGrace to send its first request.
	accepted time.Time
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

// Close closes the connection and gives its place back, once.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.budget.open.Add(-1)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	}
	return err
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
