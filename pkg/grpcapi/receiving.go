package grpcapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/credentials"

	"github.com/infer-serving/infer/pkg/core"
)

// ReceiveBudget bounds the bytes of gRPC request messages a server holds,
// over every connection: those still arriving, and those received whole
// and not yet answered. grpc-go assembles a message from its DATA frames
// as they come, before any interceptor or handler sees it, and a message
// received whole waits for its model's place in memory, so neither
// MaxRecvMsgSize (one message) nor MaxConcurrentStreams (one connection's
// calls) bounds the whole: measured on this server without the budget,
// one connection with 128 streams, each sending 32 MiB of a message
// declared at 64 MiB and then stalling, took the process from 49 MiB to
// 2.2 GiB in 12 s; and a message sent in 1-byte DATA frames costs about
// 55 bytes of memory per byte sent.
//
// The budget reads the HTTP/2 frame headers of each connection as they
// pass (its Credentials wrap every connection the server accepts) and
// follows each stream's length-prefixed messages both ways. A request
// message is charged its bytes plus FrameCost per DATA frame as they
// arrive, and keeps its charge until a response message leaves on its
// stream (the oldest charge of a stream ends with each response) or the
// stream ends (END_STREAM or RST_STREAM, from either side); a
// connection's charges end when it closes. Past the bound, a call
// received whole is refused before it waits for its model (Check: the
// HTTP port's 503 for its body budget, UNAVAILABLE here), so that what is
// held drains; and when the messages still arriving pass the bound, or
// everything held passes twice it, the connection that holds the most is
// closed (its calls fail with UNAVAILABLE), as Envoy closes a connection
// whose peer breaks its flood limits: the others keep their calls.
type ReceiveBudget struct {
	max      int64
	held     atomic.Int64 // arriving and waiting for an answer
	arriving atomic.Int64
	closed   atomic.Int64
	log      *slog.Logger

	mu    sync.Mutex
	conns map[*budgetConn]struct{}
}

// FrameCost is what a DATA frame is charged beyond its bytes: about what
// grpc-go keeps for each frame of a message being assembled (measured at
// 55 bytes for a 1-byte frame), so that a message sent a byte a frame is
// charged for the memory it takes, not for its bytes alone.
const FrameCost = 64

// NewReceiveBudget returns a budget of limit bytes (at least 1); log
// records the connections it closes.
func NewReceiveBudget(limit int64, log *slog.Logger) *ReceiveBudget {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ReceiveBudget{max: max(limit, 1), log: log, conns: map[*budgetConn]struct{}{}}
}

// Max is the budget's bound, in bytes.
func (b *ReceiveBudget) Max() int64 { return b.max }

// Held is the bytes charged now, over every connection: messages
// arriving and messages waiting for their answer.
func (b *ReceiveBudget) Held() int64 { return b.held.Load() }

// Closed is how many connections the budget has closed.
func (b *ReceiveBudget) Closed() int64 { return b.closed.Load() }

// Check refuses, with core.ErrBodyBudget, a call that would wait for its
// model while the budget is past its bound; nil b allows every call.
func (b *ReceiveBudget) Check() error {
	if b == nil {
		return nil
	}
	if h := b.held.Load(); h > b.max {
		return fmt.Errorf("%w: %d bytes of gRPC messages held, arriving or waiting for their answer, the bound is %d",
			core.ErrBodyBudget, h, b.max)
	}
	return nil
}

// Credentials are the server's transport credentials: no security, as
// insecure.NewCredentials, with every accepted connection charged to b.
// Pass them with grpc.Creds.
func (b *ReceiveBudget) Credentials() credentials.TransportCredentials { return budgetCreds{b} }

// over closes the connection that holds the most once the messages
// arriving pass the bound, or everything held passes twice it (calls
// whose answers a client does not read, say). The closed connection's
// charges leave at once, so a second call finds the budget within bounds
// unless another connection is past it too.
func (b *ReceiveBudget) over() {
	if b.arriving.Load() <= b.max && b.held.Load() <= 2*b.max {
		return
	}
	var worst *budgetConn
	var most int64
	b.mu.Lock()
	for c := range b.conns {
		if h := c.held.Load(); h > most {
			worst, most = c, h
		}
	}
	b.mu.Unlock()
	if worst == nil {
		return
	}
	b.closed.Add(1)
	b.log.Warn("gRPC connection closed: its messages hold the most of the receive budget",
		"remote", worst.RemoteAddr().String(), "held_bytes", most, "arriving_bytes", worst.arriving.Load(),
		"budget_bytes", b.max, "total_bytes", b.held.Load())
	_ = worst.Close()
}

// wrap returns conn, charged to b.
func (b *ReceiveBudget) wrap(conn net.Conn) *budgetConn {
	c := &budgetConn{Conn: conn, b: b, in: frameScanner{preface: len(clientPreface)}}
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	return c
}

// clientPreface opens every HTTP/2 connection a client makes (RFC 9113,
// section 3.4), before its first frame.
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// budgetConn is a connection whose request messages are charged to a
// budget.
type budgetConn struct {
	net.Conn
	b *ReceiveBudget
	// What the connection holds, read by over from any goroutine.
	held, arriving atomic.Int64

	mu      sync.Mutex // guards the rest: Read and Write come from two goroutines
	in, out frameScanner
	streams map[uint32]*stream
	closed  bool
}

// stream is one call's messages: the request arriving, the response
// leaving (followed, not charged), and the charges of the requests
// received whole and not yet answered, oldest first.
type stream struct {
	in, out message
	waiting []int64
}

// message is a length-prefixed message as far as it has come: its 5-byte
// gRPC prefix (compressed flag, big-endian length), the bytes still to
// come after it, and what it is charged.
type message struct {
	prefix  [5]byte
	have    int8
	need    int64
	charged int64
}

// take follows p into m: it returns how many of p's bytes m takes, how
// many of those are its body (after the prefix), and whether m is whole.
func (m *message) take(p []byte) (used int, body int64, whole bool) {
	if m.have < int8(len(m.prefix)) {
		used = copy(m.prefix[m.have:], p)
		m.have += int8(used)
		if m.have < int8(len(m.prefix)) {
			return used, 0, false
		}
		m.need = int64(binary.BigEndian.Uint32(m.prefix[1:]))
		return used, 0, m.need == 0
	}
	body = min(m.need, int64(len(p)))
	m.need -= body
	return int(body), body, m.need == 0
}

// Read reads from the connection, charging the request messages it
// returns.
func (c *budgetConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if !c.closed {
			c.in.scan(p[:n], c, true)
		}
		c.mu.Unlock()
		c.b.over()
	}
	return n, err
}

// Write writes to the connection, ending the charges its responses and
// stream ends answer.
func (c *budgetConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.closed {
		c.out.scan(p, c, false)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Close closes the connection and gives back its charges, once.
func (c *budgetConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.b.held.Add(-c.held.Swap(0))
		c.b.arriving.Add(-c.arriving.Swap(0))
		c.streams = nil
		c.b.mu.Lock()
		delete(c.b.conns, c)
		c.b.mu.Unlock()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// NetConn is the connection wrapped.
func (c *budgetConn) NetConn() net.Conn { return c.Conn }

// charge adds n bytes to s's arriving request.
func (c *budgetConn) charge(s *stream, n int64) {
	s.in.charged += n
	c.held.Add(n)
	c.arriving.Add(n)
	c.b.held.Add(n)
	c.b.arriving.Add(n)
}

// release ends a charge of n bytes, arriving or not.
func (c *budgetConn) release(n int64, arriving bool) {
	c.held.Add(-n)
	c.b.held.Add(-n)
	if arriving {
		c.arriving.Add(-n)
		c.b.arriving.Add(-n)
	}
}

// data follows a DATA frame's bytes on stream id: a request's, charged
// (inbound), or a response's (outbound), each whole response ending the
// oldest charge waiting. frameStart is set for a frame's first bytes.
func (c *budgetConn) data(id uint32, p []byte, frameStart, inbound bool) {
	s := c.streams[id]
	if s == nil {
		if !inbound {
			return // a response on a stream that holds no charge
		}
		if c.streams == nil {
			c.streams = map[uint32]*stream{}
		}
		s = &stream{}
		c.streams[id] = s
	}
	if inbound && frameStart {
		c.charge(s, FrameCost)
	}
	for len(p) > 0 {
		if inbound {
			used, body, whole := s.in.take(p)
			p = p[used:]
			c.charge(s, body)
			if whole { // received: it waits for its answer
				c.arriving.Add(-s.in.charged)
				c.b.arriving.Add(-s.in.charged)
				s.waiting = append(s.waiting, s.in.charged)
				s.in = message{}
			}
			continue
		}
		used, _, whole := s.out.take(p)
		p = p[used:]
		if whole {
			s.out = message{}
			if len(s.waiting) > 0 {
				c.release(s.waiting[0], false)
				s.waiting = s.waiting[1:]
			}
		}
	}
	if s.in == (message{}) && s.out == (message{}) && len(s.waiting) == 0 {
		delete(c.streams, id) // nothing held
	}
}

// end ends stream id's charges: the call is over.
func (c *budgetConn) end(id uint32) {
	s, ok := c.streams[id]
	if !ok {
		return
	}
	c.release(s.in.charged, true)
	for _, n := range s.waiting {
		c.release(n, false)
	}
	delete(c.streams, id)
}

// HTTP/2 frame types and flags read (RFC 9113, section 6).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	flagEndStream  = 0x1
	flagPadded     = 0x8
	frameHeaderLen = 9
)

// frameScanner follows one direction of an HTTP/2 connection through
// reads or writes of any size, frame header by frame header.
type frameScanner struct {
	preface int // bytes of the client preface still to pass
	head    [frameHeaderLen]byte
	have    int // bytes of head read
	left    int // bytes of the frame's payload still to come
	// The frame being read: its type, flags and stream, and for DATA
	// whether its pad length is still to come, how many bytes of data
	// (not padding) are still to come, and whether none has been seen.
	typ, flags byte
	stream     uint32
	padLength  bool
	dataLeft   int
	fresh      bool
}

// scan follows p, one direction's bytes (inbound: the client's), telling
// c of the DATA it carries and of the streams that end.
func (s *frameScanner) scan(p []byte, c *budgetConn, inbound bool) {
	if s.preface > 0 {
		k := min(s.preface, len(p))
		s.preface -= k
		p = p[k:]
	}
	for len(p) > 0 {
		if s.left == 0 && s.have < frameHeaderLen {
			k := copy(s.head[s.have:], p)
			s.have += k
			p = p[k:]
			if s.have < frameHeaderLen {
				return
			}
			s.begin()
			if s.left == 0 {
				s.finish(c)
			}
			continue
		}
		k := min(s.left, len(p))
		if s.typ == frameData {
			s.payload(p[:k], c, inbound)
		}
		s.left -= k
		p = p[k:]
		if s.left == 0 {
			s.finish(c)
		}
	}
}

// begin reads the frame header just completed.
func (s *frameScanner) begin() {
	s.left = int(s.head[0])<<16 | int(s.head[1])<<8 | int(s.head[2])
	s.typ, s.flags = s.head[3], s.head[4]
	s.stream = binary.BigEndian.Uint32(s.head[5:]) & 0x7fffffff
	s.padLength = s.typ == frameData && s.flags&flagPadded != 0
	s.dataLeft = s.left
	if s.padLength {
		s.dataLeft = 0 // known once the pad length comes
	}
	s.fresh = true
}

// payload takes part of a DATA frame's payload (p, at most s.left bytes):
// its pad length, data, or padding.
func (s *frameScanner) payload(p []byte, c *budgetConn, inbound bool) {
	if s.padLength {
		s.padLength = false
		s.dataLeft = max(0, s.left-1-int(p[0]))
		p = p[1:]
	}
	if n := min(s.dataLeft, len(p)); n > 0 {
		c.data(s.stream, p[:n], s.fresh, inbound)
		s.fresh = false
		s.dataLeft -= n
	}
}

// finish acts on the frame just passed: the end of its stream, from the
// client or the server.
func (s *frameScanner) finish(c *budgetConn) {
	s.have = 0
	if s.typ == frameRSTStream || (s.typ == frameData || s.typ == frameHeaders) && s.flags&flagEndStream != 0 {
		c.end(s.stream)
	}
}

// budgetCreds are ReceiveBudget's transport credentials.
type budgetCreds struct{ b *ReceiveBudget }

// budgetAuth is the AuthInfo of a connection without security.
type budgetAuth struct{ credentials.CommonAuthInfo }

func (budgetAuth) AuthType() string { return "insecure" }

func (c budgetCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.b.wrap(conn), budgetAuth{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (budgetCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("grpcapi: the receive budget's credentials are a server's")
}

func (budgetCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c budgetCreds) Clone() credentials.TransportCredentials { return c }

func (budgetCreds) OverrideServerName(string) error { return nil }
