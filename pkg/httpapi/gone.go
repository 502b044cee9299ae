package httpapi

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// goneAfter is how long an inference call runs before its connection is
// watched for the client leaving. net/http watches every request, with a
// goroutine and two deadline changes each; most calls end sooner than
// this, and a call a client leaves is cancelled (its queue place given
// up, its run skipped) at most this late.
const goneAfter = 10 * time.Millisecond

// watchGone returns the watch of a call's connection: its context ends
// when the client closes conn, or when the call's owner cancels it once
// the call is over (a request's context holds what the call leased, as
// an on-demand model's version, until it ends). The watch starts
// goneAfter on and peeks at the connection, reading nothing: bytes that
// arrive are the next request's, and end it.
func watchGone(conn net.Conn) *goneWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &goneWatch{ctx: ctx, cancel: cancel, conn: conn, rc: rawConn(conn)}
	if w.rc != nil {
		w.timer = time.AfterFunc(goneAfter, w.run)
	}
	return w
}

// goneWatch is one call's watch of its connection.
type goneWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	conn   net.Conn
	rc     syscall.RawConn
	timer  *time.Timer

	mu       sync.Mutex
	stopped  bool
	watching chan struct{} // closed when the watch returns; nil before it starts
}

// run peeks at the connection until the client closes it (the context
// ends), a byte arrives, or stop cuts the wait with a past deadline.
func (w *goneWatch) run() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.watching = make(chan struct{})
	w.mu.Unlock()
	defer close(w.watching)
	gone := false
	_ = w.rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			return false // nothing yet: wait for the descriptor
		case err != nil, n == 0:
			gone = true // reset, or closed (EOF)
		}
		return true
	})
	if gone {
		w.cancel()
	}
}

// stop ends the watch, waiting for it if it started, before the server
// reads from the connection again; the context stays until cancel.
func (w *goneWatch) stop() {
	if w.timer == nil {
		return
	}
	w.timer.Stop()
	w.mu.Lock()
	w.stopped = true
	watching := w.watching
	w.mu.Unlock()
	if watching != nil {
		// A past deadline ends the wait; the server sets its own before it
		// reads the next request.
		_ = w.conn.SetReadDeadline(time.Unix(1, 0))
		<-watching
	}
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
