package grpcapi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

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
// call ends (the server's END_STREAM, or RST_STREAM from either side); a
// connection's charges end when it closes. Only what grpc-go keeps is
// charged: DATA on a stream the client opened and has not ended, with
// its padding and the pool buffer grpc-go reads the frame into, and each
// call's header block (its metadata) until the call ends. Past the
// bound, an inference call received whole is refused before it waits for
// its model when its connection holds more than its share of the bound
// (Check: the HTTP port's 503 for its body budget, UNAVAILABLE here), so
// that what is held drains while connections within their share go on.
// When the messages still arriving pass the bound, the connection whose
// oldest unfinished message began first (a stalled sender, not the
// client whose message just came) is closed; when everything held passes
// twice the bound (answers a client does not read), the one holding the
// most: its calls fail with UNAVAILABLE, as Envoy closes a connection
// whose peer breaks its flood limits, and the others keep theirs.
type ReceiveBudget struct {
	max      int64
	held     atomic.Int64 // arriving and waiting for an answer
	arriving atomic.Int64
	holders  atomic.Int64 // connections holding anything
	closed   atomic.Int64
	log      *slog.Logger

	overMu sync.Mutex // one over at a time
	mu     sync.Mutex
	conns  map[*budgetConn]struct{}
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

// Check refuses, with core.ErrBodyBudget, an inference call that would
// wait for its model while the budget is past its bound and the call's
// connection (ctx's peer) holds more than its share: the bound split
// evenly between the connections that hold anything. A connection within
// its share is not refused for what others hold. Nil b allows every call.
func (b *ReceiveBudget) Check(ctx context.Context) error {
	if b == nil {
		return nil
	}
	total := b.held.Load()
	if total <= b.max {
		return nil
	}
	share := b.max / max(b.holders.Load(), 1)
	var own int64 = -1 // unknown: refused
	if p, ok := peer.FromContext(ctx); ok {
		if a, ok := p.AuthInfo.(budgetAuth); ok && a.conn.b == b {
			own = a.conn.held.Load()
		}
	}
	if own >= 0 && own <= share {
		return nil
	}
	return fmt.Errorf("%w: %d bytes of gRPC messages held, arriving or waiting for their answer, past the bound of %d; this connection holds %d",
		core.ErrBodyBudget, total, b.max, own)
}

// Credentials are the server's transport credentials: no security, as
// insecure.NewCredentials, with every accepted connection charged to b.
// Pass them with grpc.Creds.
func (b *ReceiveBudget) Credentials() credentials.TransportCredentials { return budgetCreds{b} }

// over closes connections while the budget is past its bound: first
// those whose charges have made no progress (no request byte in, no
// response out) for StallGrace, the most stalled first, since refusing
// other calls frees nothing they hold; then, should every holder be
// making progress, the one holding the most once the messages arriving
// pass the bound or everything held passes twice it. One over at a time;
// a closed connection's charges leave at once.
func (b *ReceiveBudget) over() {
	if b.held.Load() <= b.max {
		return
	}
	b.overMu.Lock()
	defer b.overMu.Unlock()
	b.mu.Lock()
	conns := make([]*budgetConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	now := time.Now().UnixNano()
	for b.held.Load() > b.max {
		var stalled, most *budgetConn
		for _, c := range conns {
			if c.held.Load() <= 0 {
				continue
			}
			if stalled == nil || c.progress.Load() < stalled.progress.Load() {
				stalled = c
			}
			if most == nil || c.held.Load() > most.held.Load() {
				most = c
			}
		}
		worst, reason := stalled, "its charges made no progress for the longest"
		if stalled == nil || now-stalled.progress.Load() < int64(StallGrace) {
			if b.arriving.Load() <= b.max && b.held.Load() <= 2*b.max {
				return // every holder is making progress: Check refuses what comes
			}
			worst, reason = most, "it holds the most, every holder making progress"
		}
		if worst == nil {
			return
		}
		conns = slices.DeleteFunc(conns, func(c *budgetConn) bool { return c == worst })
		held := worst.held.Load()
		if !worst.giveBack() {
			continue
		}
		b.closed.Add(1) // counted before the close, which its client may see at once
		b.log.Warn("gRPC connection closed by the receive budget past its bound: "+reason,
			"remote", worst.RemoteAddr().String(), "held_bytes", held, "budget_bytes", b.max, "total_bytes", b.held.Load())
		_ = worst.Conn.Close()
	}
}

// CallCost is what an open call is charged beyond its messages, until it
// ends: what grpc-go keeps for it (its stream and handler goroutine, about
// 10 KiB measured, and its metadata, decoded, -bin values decoded again,
// within MaxHeaderList), whatever its header block's size on the wire,
// where HPACK lets a few bytes stand for a field of kilobytes.
const CallCost = 10<<10 + 2*MaxHeaderList

// MaxHeaderList bounds a call's header list (its metadata, decoded:
// grpc.MaxHeaderListSize), in bytes, as the HTTP port bounds a request's
// line and headers at 16 KiB.
const MaxHeaderList = 16 << 10

// StallGrace is how long a connection's charges may go without progress
// (a request byte in, a response out) before, past the bound, it is the
// first closed: a client pausing a second mid-upload is rare, and a
// stalled one holds what it holds for as long as it likes.
const StallGrace = time.Second

// wrap returns conn, charged to b.
func (b *ReceiveBudget) wrap(conn net.Conn) *budgetConn {
	c := &budgetConn{Conn: conn, b: b, in: frameScanner{preface: len(clientPreface)}}
	c.progress.Store(time.Now().UnixNano())
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
	// What the connection holds, read by over and Check from any goroutine,
	// and when its charges last made progress (Unix nanoseconds).
	held, arriving, progress atomic.Int64

	mu      sync.Mutex // guards the rest: Read and Write come from two goroutines
	now     int64      // the time of the Read being scanned (Unix nanoseconds)
	in, out frameScanner
	streams map[uint32]*stream // the calls the client has opened and the server not ended
	closed  bool
}

// stream is one call: its request arriving, its response leaving
// (followed, not charged), and the charges of its requests received
// whole and not yet answered, oldest first.
type stream struct {
	in, out message
	waiting []int64
	// meta is the charge of its header block (the call's metadata), kept
	// until the call ends.
	meta int64
	// sent is set once the client has ended its side (END_STREAM): grpc-go
	// takes no more of its data.
	sent bool
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
			c.now = time.Now().UnixNano()
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

// Close closes the connection and gives back its charges.
func (c *budgetConn) Close() error {
	c.giveBack()
	return c.Conn.Close()
}

// giveBack gives back the connection's charges and takes no more, before
// it closes; it reports whether this call did (and not an earlier one).
func (c *budgetConn) giveBack() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	if h := c.held.Swap(0); h != 0 {
		c.b.held.Add(-h)
		c.b.holders.Add(-1)
	}
	c.b.arriving.Add(-c.arriving.Swap(0))
	c.streams = nil
	c.b.mu.Lock()
	delete(c.b.conns, c)
	c.b.mu.Unlock()
	return true
}

// NetConn is the connection wrapped.
func (c *budgetConn) NetConn() net.Conn { return c.Conn }

// add charges n bytes (negative: gives them back), to what arrives as
// well when arriving is set.
func (c *budgetConn) add(n int64, arriving bool) {
	if n == 0 {
		return
	}
	switch h := c.held.Add(n); {
	case h == n:
		c.b.holders.Add(1) // it held nothing
	case h == 0:
		c.b.holders.Add(-1)
	}
	c.b.held.Add(n)
	if arriving {
		c.arriving.Add(n)
		c.b.arriving.Add(n)
	}
}

// charge adds n bytes to s's request arriving.
func (c *budgetConn) charge(s *stream, n int64) {
	if n == 0 {
		return
	}
	s.in.charged += n
	c.add(n, true)
}

// progressed notes that the connection's charges made progress.
func (c *budgetConn) progressed(now int64) {
	if c.progress.Load() < now {
		c.progress.Store(now)
	}
}

// charged is stream id when it takes request data: opened by the client
// and not ended on its side.
func (c *budgetConn) charged(id uint32) *stream {
	if s := c.streams[id]; s != nil && !s.sent {
		return s
	}
	return nil
}

// begin opens a call on the client's HEADERS, charging it CallCost, and
// charges a request's
// DATA frame for what grpc-go keeps of it beyond its data: FrameCost, and
// the buffer it reads the frame into rounded up to its pool's sizes.
func (c *budgetConn) begin(id uint32, typ, _ byte, length int, inbound bool) {
	if !inbound {
		return
	}
	switch typ {
	case frameHeaders, frameContinuation:
		s := c.streams[id]
		if s == nil && typ == frameHeaders {
			if c.streams == nil {
				c.streams = map[uint32]*stream{}
			}
			s = &stream{}
			c.streams[id] = s
		}
		if s != nil && typ == frameHeaders && s.meta == 0 {
			s.meta = CallCost
			c.add(CallCost, false)
		}
	case frameData:
		if s := c.charged(id); s != nil && length > 0 {
			c.charge(s, FrameCost+int64(frameBuffer(length)-length))
		}
	}
}

// padding charges a request's DATA frame its padding (and pad length),
// which grpc-go keeps with the frame.
func (c *budgetConn) padding(id uint32, n int, inbound bool) {
	if s := c.charged(id); inbound && s != nil {
		c.charge(s, int64(n)+1)
	}
}

// data follows a DATA frame's bytes on stream id: a request's, charged
// (inbound), or a response's (outbound), each whole response ending the
// oldest charge waiting.
func (c *budgetConn) data(id uint32, p []byte, inbound bool) {
	if !inbound {
		s := c.streams[id]
		for s != nil && len(p) > 0 {
			used, _, whole := s.out.take(p)
			p = p[used:]
			if whole {
				s.out = message{}
				if len(s.waiting) > 0 {
					c.add(-s.waiting[0], false)
					s.waiting = s.waiting[1:]
					c.progressed(time.Now().UnixNano())
				}
			}
		}
		return
	}
	s := c.charged(id)
	for s != nil && len(p) > 0 {
		used, body, whole := s.in.take(p)
		p = p[used:]
		c.charge(s, body)
		c.progressed(c.now)
		if whole { // received: it waits for its answer
			if s.in.charged > 0 {
				s.waiting = append(s.waiting, s.in.charged)
				c.arriving.Add(-s.in.charged)
				c.b.arriving.Add(-s.in.charged)
			}
			s.in = message{}
		}
	}
}

// end acts on a frame that ends a side of a call: the client's END_STREAM
// ends its request (an unfinished message is dropped by grpc-go and given
// back here; those received whole keep waiting for their answers); the
// server's END_STREAM, or a reset from either side, ends the call and
// every charge of it.
func (c *budgetConn) end(id uint32, typ, flags byte, inbound bool) {
	s := c.streams[id]
	if s == nil {
		return
	}
	switch {
	case typ == frameRSTStream, !inbound && (typ == frameData || typ == frameHeaders) && flags&flagEndStream != 0:
		c.add(-s.in.charged, true)
		for _, n := range s.waiting {
			c.add(-n, false)
		}
		c.add(-s.meta, false)
		delete(c.streams, id)
	case inbound && (typ == frameData || typ == frameHeaders) && flags&flagEndStream != 0:
		c.add(-s.in.charged, true)
		s.in = message{}
		s.sent = true
	}
}

// frameBuffer is the bytes grpc-go holds for a DATA frame of length
// bytes: the frame itself up to its pooling threshold (1 KiB), above it
// a buffer from its pool's sizes (grpc/mem's defaults).
func frameBuffer(length int) int {
	if length <= 1<<10 {
		return length
	}
	for _, size := range [...]int{4 << 10, 16 << 10, 32 << 10, 1 << 20} {
		if length <= size {
			return size
		}
	}
	return length
}

// budgetCreds are ReceiveBudget's transport credentials.
type budgetCreds struct{ b *ReceiveBudget }

// budgetAuth is the AuthInfo of a connection without security: the
// connection, for Check to find what it holds.
type budgetAuth struct {
	credentials.CommonAuthInfo
	conn *budgetConn
}

func (budgetAuth) AuthType() string { return "insecure" }

func (c budgetCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	bc := c.b.wrap(conn)
	return bc, budgetAuth{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, conn: bc}, nil
}

func (budgetCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("grpcapi: the receive budget's credentials are a server's")
}

func (budgetCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c budgetCreds) Clone() credentials.TransportCredentials { return c }

func (budgetCreds) OverrideServerName(string) error { return nil }
