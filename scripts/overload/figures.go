package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/profile"
)

// byStatus wraps a target and keeps the requests' own times (from send
// to answer, the generator's lag left out: how long the server took) by
// outcome: answered, shed (429 or 503), or failed otherwise, by kind.
type byStatus struct {
	t    loadgen.Target
	mu   sync.Mutex
	ok   *hdr.Histogram // microseconds
	shed *hdr.Histogram
	// server holds the answered requests' time as the server reports it
	// (Server-Timing's phases): the rest of ok's is the front end's and
	// the network's.
	server *hdr.Histogram
	other  map[string]int64
	said   map[string]string // the first error of each kind in other
	// retried counts requests sent twice because a kept connection was
	// closed under them: a request the server cut, which the client sent
	// again.
	retried int64
	sent    int64
}

func newByStatus(t loadgen.Target) *byStatus {
	return &byStatus{t: t, ok: hdr.New(1, 60_000_000, 3), shed: hdr.New(1, 60_000_000, 3), server: hdr.New(1, 60_000_000, 3), other: map[string]int64{}, said: map[string]string{}}
}

// Do implements loadgen.Target.
func (b *byStatus) Do(ctx context.Context, r *loadgen.Result) {
	b.t.Do(ctx, r)
	us := max(r.End.Sub(r.Start).Microseconds(), 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent++
	if r.Attempts > 1 {
		b.retried += int64(r.Attempts - 1)
	}
	switch {
	case r.Err == nil:
		_ = b.ok.RecordValue(us)
		var server time.Duration
		for _, p := range profile.ServerPhases {
			server += r.Phases.Get(p)
		}
		_ = b.server.RecordValue(max(server.Microseconds(), 1))
	case r.Kind == "status 429" || r.Kind == "status 503":
		_ = b.shed.RecordValue(us)
	default:
		kind := r.Kind
		var op *net.OpError
		if errors.As(r.Err, &op) && op.Op == "dial" {
			kind = kindNotConnected // never written to an accepted connection
		}
		if b.other[kind]++; b.other[kind] == 1 && r.Err != nil {
			b.said[kind] = r.Err.Error()
		}
	}
}

// kindNotConnected is the failure of a request whose connection was
// refused or reset while connecting: it was never written to a
// connection the server accepted.
const kindNotConnected = "not connected"

// quantiles are a histogram's figures, in milliseconds.
type quantiles struct {
	Count    int64
	P50, P99 float64
}

func quantilesOf(h *hdr.Histogram) quantiles {
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return quantiles{h.TotalCount(), ms(50), ms(99)}
}

type figures struct {
	OK, Shed, Server           quantiles
	SentRate, OKRate, ShedRate float64 // per second
	Other                      map[string]int64
	Said                       map[string]string
	Retried                    int64
}

// figures reads what was recorded, as rates over window.
func (b *byStatus) figures(window time.Duration) figures {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := max(window.Seconds(), 1e-9)
	f := figures{OK: quantilesOf(b.ok), Shed: quantilesOf(b.shed), Server: quantilesOf(b.server), Other: map[string]int64{}, Retried: b.retried}
	f.SentRate, f.OKRate, f.ShedRate = float64(b.sent)/s, float64(f.OK.Count)/s, float64(f.Shed.Count)/s
	f.Said = map[string]string{}
	for k, n := range b.other {
		f.Other[k], f.Said[k] = n, b.said[k]
	}
	return f
}
