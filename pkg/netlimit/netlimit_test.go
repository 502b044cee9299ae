package netlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// listen returns a loopback listener within a budget of limit.
func listen(t *testing.T, limit int) (*Listener, *Budget) {
	t.Helper()
	ln, err := ListenTCP(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := NewBudget(limit)
	l := Listen(ln, b)
	t.Cleanup(func() { l.Close() })
	return l, b
}

// Connections the kernel completed before anyone accepted them, each with
// a request written, are all taken and answered when the listener is
// quiesced and then closed; a client that connects after the quiesce
// began never gets a connection it could write to, and is refused once
// the listener is closed.
func TestQuiesceTakesTheQueuedConnectionsBeforeClose(t *testing.T) {
	l, _ := listen(t, 64)
	const queued = 8
	var clients []net.Conn
	for i := range queued {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "request %d\n", i)
		clients = append(clients, c)
	}

	stop := make(chan struct{})
	defer close(stop)
	quiesced := make(chan int, 1)
	go func() {
		n, err := l.Quiesce(time.Millisecond, stop)
		if err != nil {
			t.Error(err)
		}
		quiesced <- n
	}()

	// The server's accept loop, answering each request on its connection.
	served := 0
	for served < queued {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading a queued connection's request: %v", err)
		}
		fmt.Fprintf(c, "answer to %s", line)
		c.Close()
		served++
	}
	if left := <-quiesced; left != 0 {
		t.Fatalf("quiesce returned with %d connections queued", left)
	}
	// A handshake after the quiesce is not completed: the dial times out.
	if c, err := net.DialTimeout("tcp", l.Addr().String(), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a connection completed after the quiesce")
	}
	l.Close()

	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(c)
		if want := fmt.Sprintf("answer to request %d\n", i); err != nil || string(got) != want {
			t.Errorf("client %d: read %q, %v; want %q", i, got, err, want)
		}
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), 30*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a dial after close: %v, want connection refused", err)
	}
}

// serveHTTP serves l with an http.Server that tracks connection states,
// answering "ok" to any request.
func serveHTTP(t *testing.T, l *Listener) {
	t.Helper()
	hs := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: ConnState,
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
}

// kept is a client's keep-alive connection.
type kept struct {
	net.Conn
	br *bufio.Reader
}

func dialKept(t *testing.T, addr string) *kept {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &kept{Conn: c, br: bufio.NewReader(c)}
}

// get sends one request and reads its answer.
func (k *kept) get() error {
	if _, err := io.WriteString(k, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	k.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// waitIdle waits until the listener holds n connections that eviction
// could take: it waits for a state, it times nothing.
func waitIdle(t *testing.T, l *Listener, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		idle := 0
		l.mu.Lock()
		for c := range l.conns {
			if c.idle(time.Now()) {
				idle++
			}
		}
		l.mu.Unlock()
		if idle == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", idle, n)
		}
	}
}

// At its limit, a listener makes room for a new connection by closing the
// keep-alive connection idle longest (and at least evictAge); a connection in the middle of a
// request is never taken, so with every place busy the new one is reset.
func TestFullListenerEvictsTheLongestIdle(t *testing.T) {
	l, b := listen(t, 2)
	serveHTTP(t, l)

	first, second := dialKept(t, l.Addr().String()), dialKept(t, l.Addr().String())
	for _, k := range []*kept{first, second} {
		if err := k.get(); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, l, 2)
	if err := second.get(); err != nil { // second is now the more recent
		t.Fatal(err)
	}
	waitIdle(t, l, 2)
	time.Sleep(evictAge) // both at rest: idle for evictAge

	third := dialKept(t, l.Addr().String())
	if err := third.get(); err != nil {
		t.Fatalf("a new connection at the limit: %v", err)
	}
	if err := first.get(); err == nil {
		t.Fatal("the longest-idle connection was kept")
	}
	if err := second.get(); err != nil {
		t.Fatalf("the more recent idle connection was taken: %v", err)
	}
	if b.Evicted() != 1 || b.Rejected() != 0 || b.Open() != 2 {
		t.Fatalf("evicted %d, rejected %d, open %d; want 1, 0, 2", b.Evicted(), b.Rejected(), b.Open())
	}

	// Both places mid-request (headers begun, not ended; net/http turns a
	// connection active only once its headers are read): nothing to take.
	for _, k := range []*kept{second, third} {
		io.WriteString(k, "GET / HTTP/1.1\r\n")
	}
	waitIdle(t, l, 0)
	// The reset may come before the dial returns.
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		defer c.Close()
		fourth := &kept{Conn: c, br: bufio.NewReader(c)}
		if err := fourth.get(); err == nil {
			t.Fatal("a connection past a limit of busy connections was served")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection past a limit of busy connections: %v, want it reset", err)
	}
	if b.Rejected() != 1 || b.Evicted() != 1 {
		t.Fatalf("rejected %d, evicted %d; want 1, 1", b.Rejected(), b.Evicted())
	}
}

// A connection idle for less than evictAge, as a busy keep-alive client's
// is between a response and its next request, is never taken: the new
// connection is refused instead. Once it has rested, a connection to any
// listener sharing the budget (a gRPC port's, which has no HTTP states)
// takes its place.
func TestEvictionSparesBusyClientsAndSpansListeners(t *testing.T) {
	l, b := listen(t, 1)
	serveHTTP(t, l)
	raw, err := ListenTCP(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := Listen(raw, b)
	t.Cleanup(func() { other.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	kept := dialKept(t, l.Addr().String())
	if err := kept.get(); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, l, 1)
	// Just idle: a newcomer on the other listener is refused, not given
	// the busy client's place.
	if c, err := net.Dial("tcp", other.Addr().String()); err == nil {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the newcomer was kept")
		}
		c.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); b.Rejected() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rejected %d, want 1", b.Rejected())
		}
	}
	if err := kept.get(); err != nil {
		t.Fatalf("the busy client's connection was taken: %v", err)
	}

	time.Sleep(evictAge)
	c, err := net.Dial("tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case got := <-accepted:
		defer got.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("the newcomer on the other listener was not accepted")
	}
	if b.Evicted() != 1 || b.Open() != 1 {
		t.Fatalf("evicted %d, open %d; want 1, 1", b.Evicted(), b.Open())
	}
	if err := kept.get(); err == nil {
		t.Fatal("the rested connection was not taken")
	}
}

// A client that stops reading a response loses its connection once a
// write has made no progress for sendTimeout, giving its place back; one
// that keeps reading gets the whole response.
func TestStalledReaderLosesItsConnection(t *testing.T) {
	defer func(d time.Duration) { sendTimeout = d }(sendTimeout)
	sendTimeout = 300 * time.Millisecond
	l, b := listen(t, 4)
	wrote := make(chan error, 1)
	hs := &http.Server{ConnState: ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 64 MiB, more than any socket buffers: in one write, as an
		// inference response is written, or in 64.
		var err error
		if r.URL.Path == "/one" {
			_, err = w.Write(make([]byte, 64<<20))
		} else {
			chunk := make([]byte, 1<<20)
			for range 64 {
				if _, err = w.Write(chunk); err != nil {
					break
				}
			}
		}
		wrote <- err
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	c := dialKept(t, l.Addr().String())
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-wrote:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the stalled write ended with %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the write to a client that stopped reading never ended")
	}
	for deadline := time.Now().Add(30 * time.Second); b.Open() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want the stalled one closed", b.Open())
		}
	}

	// A client that keeps reading, slowly, gets the whole response however
	// long it takes in all, the body written in one call included: each
	// byte taken gives the write a fresh sendTimeout.
	for _, path := range []string{"/", "/one"} {
		r := dialKept(t, l.Addr().String())
		io.WriteString(r, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		began, n := time.Now(), int64(0)
		for err == nil {
			var k int64
			k, err = io.CopyN(io.Discard, resp.Body, 4<<20)
			n += k
			time.Sleep(sendTimeout / 4) // well within the timeout each time
		}
		if err != io.EOF || n != 64<<20 {
			t.Fatalf("%s: read %d bytes, %v; want 64 MiB", path, n, err)
		}
		if took := time.Since(began); took < 2*sendTimeout {
			t.Fatalf("%s: read in %v: the reader was not slower than the timeout in all, the test shows nothing", path, took)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("%s: the read response's writes: %v", path, err)
		}
	}
}

// A server that answers before it has read the whole request (a 431 for
// headers over its buffer, a 413 or a shed 429 with the body unread) and
// closes lingers: the client's write of the rest completes and it reads
// the answer, then the end, where a plain close would reset the
// connection under its write. Past lingerBytes the client is reset.
func TestCloseLingersOverUnreadBytes(t *testing.T) {
	defer func(n int64) { lingerBytes = n }(lingerBytes)
	l, b := listen(t, 4)
	const sent = 32 << 20 // more than loopback's socket buffers hold
	for _, tc := range []struct {
		linger int64
		reset  bool
	}{{linger: 2 * sent}, {linger: 1 << 20, reset: true}} {
		lingerBytes = tc.linger
		served := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				served <- err
				return
			}
			if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
				served <- err
				return
			}
			_, err = io.WriteString(c, "refused\n")
			served <- errors.Join(err, c.Close())
		}()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, werr := c.Write(make([]byte, sent))
		answer, rerr := io.ReadAll(c)
		c.Close()
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		switch {
		case tc.reset && werr == nil:
			t.Errorf("lingerBytes %d: a client that sent %d bytes wrote them all, want it reset", tc.linger, sent)
		case !tc.reset && (werr != nil || rerr != nil || string(answer) != "refused\n"):
			t.Errorf("lingerBytes %d: write %v, read %q, %v; want the whole request written and the answer read to its end", tc.linger, werr, answer, rerr)
		}
	}
	if b.Open() != 0 {
		t.Errorf("%d connections open after both closed, want 0", b.Open())
	}
}
