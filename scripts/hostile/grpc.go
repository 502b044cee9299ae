package main

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/internal/h2wire"
)

// inferMethod is the gRPC method the raw calls open.
const inferMethod = "/inference.GRPCInferenceService/ModelInfer"

// stalledGRPC: connections that open 64 calls each and send 32 MiB of
// a message declared at 64 MiB on every one, then stop: 8 GiB if the
// server kept it all. Its receive budget must close each connection past
// the bound, so that the process stays within -rss-bound (checked over
// the whole run).
func stalledGRPC(c config, rep *report) {
	const conns, streams, part = 4, 64, 32 << 20
	var wg sync.WaitGroup
	var closed, refused, sent atomic.Int64
	for range conns {
		wg.Go(func() {
			h, err := h2wire.Dial(c.grpc, 5*time.Second)
			if err != nil {
				refused.Add(1)
				return
			}
			defer h.Close()
			zeros := make([]byte, 16<<10)
			for i := range streams {
				id := uint32(2*i + 1)
				if h.Open(id, inferMethod) != nil || h.Send(id, h2wire.Message(64<<20, 0), 5, 0, false, 10*time.Second) != nil {
					closed.Add(1)
					return
				}
				for n := 0; n < part; n += len(zeros) {
					if err := h.Send(id, zeros, len(zeros), 0, false, 10*time.Second); err != nil {
						if !timedOut(err) {
							closed.Add(1)
						}
						return
					}
					sent.Add(int64(len(zeros)))
				}
			}
			if h.WaitClosed(10*time.Second) == nil {
				closed.Add(1)
			}
		})
	}
	wg.Wait()
	rep.add(closed.Load() == conns, "gRPC stalled messages (%d connections of %d calls, 32 MiB of 64 MiB each): %d MiB sent, %d connections closed by the receive budget, %d refused",
		conns, streams, sent.Load()>>20, closed.Load(), refused.Load())
}

// tinyFramesGRPC: calls whose message comes a byte a DATA frame for a few
// seconds, each frame costing the server far more than its byte. The
// budget charges each frame what grpc-go keeps for it.
func tinyFramesGRPC(c config, rep *report) {
	const streams, lasts = 4, 8 * time.Second
	h, err := h2wire.Dial(c.grpc, 5*time.Second)
	if err != nil {
		rep.add(false, "gRPC 1-byte frames: %v", err)
		return
	}
	defer h.Close()
	var frames int
	closed := false
	end := time.Now().Add(lasts)
	for i := range streams {
		if h.Open(uint32(2*i+1), inferMethod) != nil || h.Send(uint32(2*i+1), h2wire.Message(64<<20, 0), 5, 0, false, 10*time.Second) != nil {
			closed = true
		}
	}
	one := []byte{0}
	for !closed && time.Now().Before(end) {
		for i := range streams {
			if h.Send(uint32(2*i+1), one, 1, 0, false, 10*time.Second) != nil {
				closed = true
				break
			}
			frames++
		}
	}
	rep.add(true, "gRPC 1-byte frames (%d calls for %v): %d frames sent, closed by the receive budget: %v", streams, lasts, frames, closed)
}

// timedOut reports whether err is a deadline's: the server stopped
// reading, which is not a close.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
