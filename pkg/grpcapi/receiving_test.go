package grpcapi

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/infer-serving/infer/internal/h2wire"
	"github.com/infer-serving/infer/pkg/core"
)

// TestReceiveBudgetCharges follows real HTTP/2 bytes, cut at every size,
// through a connection's scanner: a request message is charged its bytes
// and FrameCost a frame as they come, padding never, and keeps its charge
// until a response leaves on its stream (the oldest first) or the stream
// ends, from either side; past the bound, Check refuses.
func TestReceiveBudgetCharges(t *testing.T) {
	for _, cut := range []int{1, 7, 9, 100, 1 << 20} {
		var wire, reply bytes.Buffer
		cl := writer(t, &wire)
		must(t, cl.Open(1, healthCheck), cl.Open(3, healthCheck))
		must(t, cl.Send(1, h2wire.Message(1000, 600), 100, 0, false, 0)) // 7 frames: 605 bytes
		must(t, cl.Send(3, h2wire.Message(50, 30), 10, 4, false, 0))     // 4 padded frames: 35 bytes
		mark := wire.Len()
		must(t, cl.Send(1, make([]byte, 400), 1000, 0, false, 0), // the rest of stream 1's message
			cl.Send(1, h2wire.Message(0, 0), 1000, 0, false, 0), // an empty message
			cl.Reset(3), // stream 3 given up
			cl.Open(5, healthCheck),
			cl.Send(5, h2wire.Message(10, 10), 1000, 0, true, 0)) // a whole call in one frame
		// The server's answers on stream 1: a response of 20 bytes in
		// padded frames of 3, then one of none, then its trailers.
		srv := http2.NewFramer(&reply, nil)
		response := h2wire.Message(20, 20)
		for i := 0; i < len(response); i += 3 {
			must(t, srv.WriteDataPadded(1, false, response[i:min(i+3, len(response))], []byte{0, 0}))
		}
		mid := reply.Len()
		must(t, srv.WriteData(1, false, h2wire.Message(0, 0)))
		must(t, srv.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true}))

		const budget = 1400
		b := NewReceiveBudget(budget, nil)
		c := b.wrap(nil)
		feed := func(p []byte, inbound bool) {
			for len(p) > 0 {
				n := min(cut, len(p))
				if inbound {
					c.in.scan(p[:n], c, true)
				} else {
					c.out.scan(p[:n], c, false)
				}
				p = p[n:]
			}
		}
		held := func(when string, want, arriving int64) {
			t.Helper()
			if b.Held() != want || c.held.Load() != want || b.arriving.Load() != arriving || c.arriving.Load() != arriving {
				t.Fatalf("cut %d, %s: held %d (connection %d), arriving %d (connection %d); want %d and %d",
					cut, when, b.Held(), c.held.Load(), b.arriving.Load(), c.arriving.Load(), want, arriving)
			}
		}
		all := wire.Bytes()
		feed(all[:mark], true)
		// Stream 1's message: its prefix is not charged, its 600 bytes and
		// seven frames are; stream 3's likewise, without the padding.
		arriving := int64(600 + 7*FrameCost + 30 + 4*FrameCost)
		held("arriving", arriving, arriving)
		if err := b.Check(); err != nil {
			t.Fatalf("cut %d: within the bound, Check: %v", cut, err)
		}
		feed(all[mark:], true)
		// Stream 1 holds its two requests, received whole: 1000 bytes in
		// eight frames, and an empty one in one frame; the rest ended.
		first, second := int64(1000+8*FrameCost), int64(FrameCost)
		held("received", first+second, 0)
		if err := b.Check(); !errors.Is(err, core.ErrBodyBudget) {
			t.Fatalf("cut %d: past the bound (%d of %d), Check: %v", cut, b.Held(), budget, err)
		}
		feed(reply.Bytes()[:mid], false)
		held("one answered", second, 0)
		feed(reply.Bytes()[mid:], false)
		held("all answered", 0, 0)
		if len(c.streams) != 0 {
			t.Fatalf("cut %d: %d streams kept with nothing held", cut, len(c.streams))
		}
	}
}

// TestReceiveBudgetServerEnds ends a message's charge when the server
// ends its stream, as it does for a message over MaxRecvMsgSize.
func TestReceiveBudgetServerEnds(t *testing.T) {
	var wire, reply bytes.Buffer
	cl := writer(t, &wire)
	must(t, cl.Open(1, healthCheck), cl.Send(1, h2wire.Message(1<<20, 500), 1000, 0, false, 0))
	b := NewReceiveBudget(1<<30, nil)
	c := b.wrap(nil)
	c.in.scan(wire.Bytes(), c, true)
	if b.Held() == 0 {
		t.Fatal("a message half received is not charged")
	}
	srv := http2.NewFramer(&reply, nil)
	srv.WriteSettings()
	srv.WriteRSTStream(1, http2.ErrCodeNo)
	for i := range reply.Len() { // a byte at a time
		c.out.scan(reply.Bytes()[i:i+1], c, false)
	}
	if b.Held() != 0 {
		t.Fatalf("held %d after the server reset the stream", b.Held())
	}
}

// TestReceiveBudgetClosesTheLargest serves gRPC with a budget of 1 MiB:
// a connection whose stalled messages pass it is closed, its charges
// given back, while a client on another connection is answered before,
// during and after.
func TestReceiveBudgetClosesTheLargest(t *testing.T) {
	b := NewReceiveBudget(1<<20, nil)
	gs := grpc.NewServer(grpc.Creds(b.Credentials()))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := healthpb.NewHealthClient(cc)
	check := func(when string, service string) {
		t.Helper()
		if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service}); err != nil {
			t.Fatalf("%s: the well-behaved client's call failed: %v", when, err)
		}
	}
	check("before", "")
	// A 200 KiB message, many frames, answered and then uncharged.
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 200<<10)}); err == nil {
		t.Fatal("an unknown service was found")
	}

	attacker, err := h2wire.Dial(ln.Addr().String(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	// Three stalled messages of 400 KiB each: the first two fit, the
	// third passes the budget, and the server may close the connection
	// before all of it is written.
	for i, id := range []uint32{1, 3, 5} {
		err := attacker.Open(id, healthCheck)
		if err == nil {
			err = attacker.Send(id, h2wire.Message(4<<20, 400<<10), 16<<10, 0, false, 30*time.Second)
		}
		if err != nil && (i < 2 || !h2wire.Closed(err)) {
			t.Fatalf("stream %d: %v", id, err)
		}
		if i == 0 {
			check("during", "")
		}
	}
	// The server closes the connection, with no error of flow control or
	// protocol first.
	if err := attacker.WaitClosed(30 * time.Second); err != nil {
		t.Fatalf("the connection past the budget was not closed (held %d of %d): %v", b.Held(), b.Max(), err)
	}
	if b.Closed() != 1 {
		t.Fatalf("%d connections closed, want 1", b.Closed())
	}
	check("after", "")
	if b.Held() != 0 {
		t.Fatalf("held %d with no message in flight", b.Held())
	}
}

// healthCheck is the method the raw calls open: any method's messages
// are charged alike, before the server knows what they hold.
const healthCheck = "/grpc.health.v1.Health/Check"

// writer is an h2wire.Conn writing to w.
func writer(t *testing.T, w io.Writer) *h2wire.Conn {
	t.Helper()
	c, err := h2wire.Writer(w)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// must fails the test at the first error of errs.
func must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
