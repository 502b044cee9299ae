package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/infer-serving/infer/pkg/netlimit"
	"github.com/infer-serving/infer/pkg/runner"
)

// serving is a Server run by Serve on loopback listeners.
type serving struct {
	s             *Server
	http, metrics string // host:port
	stop          context.CancelFunc
	done          chan error
}

func serveLoopback(t *testing.T, opts Options) *serving {
	t.Helper()
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.drained = make(chan struct{})
	listen := func() net.Listener {
		ln, err := netlimit.ListenTCP(t.Context(), "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ls := Listeners{HTTP: listen(), Metrics: listen()}
	ctx, stop := context.WithCancel(context.Background())
	sv := &serving{s: s, http: ls.HTTP.Addr().String(), metrics: ls.Metrics.Addr().String(), stop: stop, done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(ctx, ls) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
		<-sv.done
		s.Close()
		repo.Close()
	})
	return sv
}

// metric reads one sample from the metrics port, -1 when it is absent.
func (sv *serving) metric(t *testing.T, sample string) float64 {
	t.Helper()
	r := call(t, "GET", "http://"+sv.metrics+"/metrics", nil, nil)
	for line := range strings.Lines(string(r.body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// eventually polls cond until it holds, failing after 30 s: it waits for
// a state, it does not time anything.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// unsent is how many bytes written to conn its peer has not yet
// acknowledged (SIOCOUTQ).
func unsent(t *testing.T, conn net.Conn) int {
	t.Helper()
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := -1
	if err := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || n < 0 {
		t.Fatalf("SIOCOUTQ: %v", err)
	}
	return n
}

// The inference ports keep at most --max-connections open and close the
// next at accept, while the metrics port, with a budget of its own,
// answers; a place given back serves a new connection.
func TestConnectionLimitKeepsTheMetricsPortAnswering(t *testing.T) {
	sv := serveLoopback(t, Options{MaxConnections: 3, ReadHeaderTimeout: time.Hour})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", sv.http)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		defer c.Close()
		// Headers begun: a connection mid-request, which no new one takes
		// the place of.
		io.WriteString(c, "GET /v2/health/live HTTP/1.1\r\n")
	}
	eventually(t, "3 inference connections open", func() bool {
		return sv.metric(t, `infer_connections_open{listener="inference"}`) == 3
	})

	// The kernel completes the handshake; the server resets the
	// connection at accept, which the dial itself may already see.
	if extra, err := net.Dial("tcp", sv.http); err == nil {
		defer extra.Close()
		extra.SetReadDeadline(time.Now().Add(30 * time.Second))
		var ne net.Error
		if _, err := extra.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a connection past the limit: read %v, want it closed by the server", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection past the limit: %v, want it reset", err)
	}
	eventually(t, "the connection past the limit counted", func() bool {
		return sv.metric(t, `infer_connections_rejected_total{listener="inference"}`) == 1
	})
	if got := sv.metric(t, `infer_connections_rejected_total{listener="inference"}`); got != 1 {
		t.Errorf("connections rejected: %v, want 1", got)
	}
	if got := sv.metric(t, `infer_connections_max{listener="inference"}`); got != 3 {
		t.Errorf("connection limit reported: %v, want 3", got)
	}

	held[0].Close()
	eventually(t, "a place given back", func() bool {
		return sv.metric(t, `infer_connections_open{listener="inference"}`) == 2
	})
	if r := call(t, "GET", "http://"+sv.http+"/v2/health/live", nil, nil); r.status != http.StatusOK {
		t.Fatalf("a new connection within the limit: status %d", r.status)
	}
}

// On shutdown the server turns not ready but keeps answering inference
// for the drain delay, each answer closing its connection; a request
// already written on a kept connection when the delay ends is answered,
// not cut; then the port closes and Serve returns.
func TestDrainKeepsServingThenAnswersWhatWasWritten(t *testing.T) {
	sv := serveLoopback(t, Options{DrainDelay: time.Hour, GracePeriod: time.Minute})
	mlp := []byte(`{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 783) + `0.5]}]}`)
	// A kept connection, used once before the drain.
	kept, err := net.Dial("tcp", sv.http)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	br := bufio.NewReader(kept)
	send := func() *http.Response {
		t.Helper()
		fmt.Fprintf(kept, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(mlp), mlp)
		kept.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("on the kept connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := send(); r.StatusCode != http.StatusOK || r.Close {
		t.Fatalf("before the drain: status %d, close %v", r.StatusCode, r.Close)
	}

	sv.stop()
	eventually(t, "not ready while draining", func() bool {
		return call(t, "GET", "http://"+sv.http+"/v2/health/ready", nil, nil).status == http.StatusServiceUnavailable
	})
	fresh, err := net.Dial("tcp", sv.http)
	if err != nil {
		t.Fatalf("during the drain delay the port must accept: %v", err)
	}
	defer fresh.Close()
	fmt.Fprintf(fresh, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(mlp), mlp)
	fresh.SetReadDeadline(time.Now().Add(30 * time.Second))
	during, err := http.ReadResponse(bufio.NewReader(fresh), nil)
	if err != nil {
		t.Fatalf("during the drain delay: %v", err)
	}
	during.Body.Close()
	if during.StatusCode != http.StatusOK || !during.Close {
		t.Fatalf("during the drain delay: status %d, closing %v; want 200 and Connection: close", during.StatusCode, during.Close)
	}

	// The kept connection's next request, written as the delay ends: in
	// the server's kernel (acknowledged, nothing left in the client's send
	// queue), which a loaded machine's loopback may take a moment to do,
	// but not yet read.
	fmt.Fprintf(kept, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(mlp), mlp)
	eventually(t, "the request taken by the server's kernel", func() bool { return unsent(t, kept) == 0 })
	close(sv.s.drained)
	kept.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a request written as the drain ended was cut: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request written as the drain ended: status %d", resp.StatusCode)
	}
	select {
	case err := <-sv.done:
		sv.done <- err
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after the drain")
	}
	if c, err := net.Dial("tcp", sv.http); err == nil {
		c.Close()
		t.Fatal("the port still accepts after the drain")
	}
}
