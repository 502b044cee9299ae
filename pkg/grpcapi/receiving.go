package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
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
	scanned  atomic.Int64 // when over last looked at every connection (Unix nanoseconds)
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
	hard := b.arriving.Load() > b.max || b.held.Load() > 2*b.max
	now := time.Now().UnixNano()
	if !hard && now-b.scanned.Load() < int64(overScan) {
		return // looked for stalled connections a moment ago
	}
	b.overMu.Lock()
	defer b.overMu.Unlock()
	b.scanned.Store(now)
	b.mu.Lock()
	conns := make([]*budgetConn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
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

// overScan is how often, past the bound but within its hard lines, over
// looks at every connection for stalled ones: each read then would cost
// a pass over up to --max-connections of them.
const overScan = 10 * time.Millisecond

// StallGrace is how long a connection's charges may go without progress
// (a request byte in, a response out) before, past the bound, it is the
// first closed: a client pausing a second mid-upload is rare, and a
// stalled one holds what it holds for as long as it likes.
const StallGrace = time.Second

// wrap returns conn, charged to b.
func (b *ReceiveBudget) wrap(conn net.Conn) *budgetConn {
	c := &budgetConn{Conn: conn, b: b, in: frameScanner{preface: len(http2.ClientPreface)}}
	c.progress.Store(time.Now().UnixNano())
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	return c
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
