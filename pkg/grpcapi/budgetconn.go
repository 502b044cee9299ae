package grpcapi

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

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

// begin opens a call on the client's HEADERS, charging it CallCost until
// it ends, and charges a request's DATA frame for what grpc-go keeps of it
// beyond its data: FrameCost, and the buffer it reads the frame into
// rounded up to its pool's sizes.
func (c *budgetConn) begin(id uint32, typ, _ byte, length int, inbound bool) {
	if !inbound {
		return
	}
	switch typ {
	case frameHeaders:
		if c.streams[id] != nil {
			return // the client's trailers: the call is open already
		}
		if c.streams == nil {
			c.streams = map[uint32]*stream{}
		}
		c.streams[id] = &stream{}
		c.add(CallCost, false)
	case frameData:
		if s := c.charged(id); s != nil && length > 0 {
			c.charge(s, FrameCost+int64(frameBuffer(length)-length))
		}
	}
}

// padding charges a request's DATA frame its padding (and pad length),
// which grpc-go keeps with the frame.
func (c *budgetConn) padding(id uint32, n int, inbound bool) {
	if !inbound {
		return
	}
	if s := c.charged(id); s != nil {
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
		c.add(-CallCost, false)
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
