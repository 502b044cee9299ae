package grpcapi

import (
	"bytes"
	"context"
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
	"google.golang.org/grpc/peer"

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
		meta1, meta3 := open(t, cl, &wire, 1), open(t, cl, &wire, 3)
		must(t, cl.Send(1, h2wire.Message(1000, 600), 100, 0, false, 0)) // 7 frames: 605 bytes
		must(t, cl.Send(3, h2wire.Message(50, 30), 10, 4, false, 0))     // 4 padded frames: 35 bytes
		mark := wire.Len()
		must(t, cl.Send(1, make([]byte, 400), 1000, 0, false, 0), // the rest of stream 1's message
			cl.Send(1, h2wire.Message(0, 0), 1000, 0, false, 0), // an empty message
			cl.Reset(3)) // stream 3 given up
		meta5 := open(t, cl, &wire, 5)
		must(t, cl.Send(5, h2wire.Message(10, 10), 1000, 0, true, 0)) // a whole call in one frame
		// The server's answers on stream 1: a response of 20 bytes in
		// padded frames of 3, then one of none, then its trailers; then
		// stream 5's trailers.
		srv := http2.NewFramer(&reply, nil)
		response := h2wire.Message(20, 20)
		for i := 0; i < len(response); i += 3 {
			must(t, srv.WriteDataPadded(1, false, response[i:min(i+3, len(response))], []byte{0, 0}))
		}
		mid := reply.Len()
		must(t, srv.WriteData(1, false, h2wire.Message(0, 0)))
		trailers := func(id uint32) error {
			return srv.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x88}, EndHeaders: true, EndStream: true})
		}
		must(t, trailers(1))
		last := reply.Len()
		must(t, trailers(5))

		const budget = 1500 + 2*CallCost
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
		// seven frames are; stream 3's likewise, with each frame's padding
		// and pad length; and both calls' header blocks.
		arriving := int64(600 + 7*FrameCost + 30 + 4*(FrameCost+4+1))
		held("arriving", arriving+meta1+meta3, arriving)
		if err := b.Check(t.Context()); err != nil {
			t.Fatalf("cut %d: within the bound, Check: %v", cut, err)
		}
		feed(all[mark:], true)
		// Stream 1 holds its two requests, received whole: 1000 bytes in
		// eight frames, and an empty one in one frame; stream 5 its one,
		// its side ended but not answered; stream 3 was reset.
		first, second, fifth := int64(1000+8*FrameCost), int64(FrameCost), int64(10+FrameCost)
		held("received", first+second+fifth+meta1+meta5, 0)
		if err := b.Check(t.Context()); !errors.Is(err, core.ErrBodyBudget) {
			t.Fatalf("cut %d: past the bound (%d of %d), Check: %v", cut, b.Held(), budget, err)
		}
		feed(reply.Bytes()[:mid], false)
		held("one answered", second+fifth+meta1+meta5, 0)
		feed(reply.Bytes()[mid:last], false)
		held("stream 1 ended", fifth+meta5, 0)
		feed(reply.Bytes()[last:], false)
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

// TestReceiveBudgetChargesOnlyWhatGRPCKeeps charges no DATA that grpc-go
// drops (on a stream never opened, or after the client ended its side),
// and a frame over grpc-go's pooling threshold the pool buffer it is read
// into.
func TestReceiveBudgetChargesOnlyWhatGRPCKeeps(t *testing.T) {
	var wire bytes.Buffer
	cl := writer(t, &wire)
	must(t, cl.Send(7, h2wire.Message(100, 100), 1000, 0, false, 0)) // stream 7 was never opened
	meta1 := open(t, cl, &wire, 1)
	must(t, cl.Send(1, h2wire.Message(10, 10), 1000, 0, true, 0),
		cl.Send(1, h2wire.Message(100, 100), 1000, 0, false, 0)) // after END_STREAM
	meta3 := open(t, cl, &wire, 3)
	must(t, cl.Send(3, h2wire.Message(1<<20, 1020), 2000, 0, false, 0)) // one frame of 1,025 bytes
	b := NewReceiveBudget(1<<30, nil)
	c := b.wrap(nil)
	c.in.scan(wire.Bytes(), c, true)
	// Stream 1's one message waits for its answer; stream 3's frame is
	// charged the 4 KiB buffer grpc-go reads it into; both calls their
	// header blocks.
	want := int64(10+FrameCost) + int64(1020+FrameCost+(4<<10)-1025) + meta1 + meta3
	if b.Held() != want {
		t.Fatalf("held %d, want %d", b.Held(), want)
	}
}

// TestReceiveBudgetBlamesTheStalled closes, past the bound, the
// connections whose charges have made no progress for StallGrace, not the
// client whose upload is under way; and, every holder making progress,
// Check refuses only a connection past its share of the bound.
func TestReceiveBudgetBlamesTheStalled(t *testing.T) {
	b := NewReceiveBudget(4*CallCost+40<<10, nil)
	conn := func() (*budgetConn, *h2wire.Conn, *bytes.Buffer) {
		server, client := net.Pipe()
		t.Cleanup(func() { client.Close() })
		var wire bytes.Buffer
		return b.wrap(server), writer(t, &wire), &wire
	}
	feed := func(c *budgetConn, wire *bytes.Buffer) {
		c.mu.Lock()
		c.now = time.Now().UnixNano()
		c.in.scan(wire.Bytes(), c, true)
		wire.Reset()
		c.mu.Unlock()
		b.over()
	}
	var stalled []*budgetConn
	for range 4 { // 4 calls with 8 KiB each sent, then nothing
		c, cl, wire := conn()
		must(t, cl.Open(1, healthCheck), cl.Send(1, h2wire.Message(1<<20, 8<<10), 1<<10, 0, false, 0))
		feed(c, wire)
		c.progress.Store(time.Now().Add(-2 * StallGrace).UnixNano()) // as if two seconds had passed
		stalled = append(stalled, c)
	}
	if b.Closed() != 0 {
		t.Fatalf("%d closed within the bound", b.Closed())
	}
	client, cl, wire := conn() // an upload under way passes the bound
	must(t, cl.Open(1, healthCheck), cl.Send(1, h2wire.Message(1<<20, 16<<10), 1<<10, 0, false, 0))
	feed(client, wire)
	if client.closed || !stalled[0].closed || b.Held() > b.Max() {
		t.Fatalf("closed: the uploader %v, a stalled one %v; held %d of %d", client.closed, stalled[0].closed, b.Held(), b.Max())
	}

	// Every holder making progress, past the bound but within twice it:
	// nothing is closed, and Check refuses only past a connection's share.
	b = NewReceiveBudget(4*CallCost, nil)
	big, cl, wire := conn()
	must(t, cl.Open(1, healthCheck), cl.Send(1, h2wire.Message(3*CallCost, 3*CallCost), 16<<10, 0, true, 0))
	feed(big, wire)
	small, cl, wire := conn()
	must(t, cl.Open(1, healthCheck), cl.Send(1, h2wire.Message(100, 100), 16<<10, 0, true, 0))
	feed(small, wire)
	if b.Held() <= b.Max() || b.Closed() != 0 {
		t.Fatalf("held %d of %d, %d closed: want past the bound, none closed", b.Held(), b.Max(), b.Closed())
	}
	within := func(c *budgetConn) context.Context {
		return peer.NewContext(t.Context(), &peer.Peer{AuthInfo: budgetAuth{conn: c}})
	}
	if err := b.Check(within(big)); !errors.Is(err, core.ErrBodyBudget) {
		t.Fatalf("the connection past its share: Check %v", err)
	}
	if err := b.Check(within(small)); err != nil {
		t.Fatalf("a connection within its share: Check %v", err)
	}
}

// open opens a call of healthCheck on stream id and returns what the
// budget charges the call itself.
func open(t *testing.T, cl *h2wire.Conn, _ *bytes.Buffer, id uint32) int64 {
	t.Helper()
	must(t, cl.Open(id, healthCheck))
	return CallCost
}
