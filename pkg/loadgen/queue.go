package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
)

// Protocols of queue-fed inference: requests published to a broker, each
// result awaited on the client's own reply address.
const (
	ProtoNATS  = queue.KindNATS
	ProtoRedis = queue.KindRedis
)

// Queue publishes Open Inference Protocol requests to a broker and waits
// for their results: its latency runs from the publication to the
// result's arrival, the time in the broker (the server's "broker" phase)
// included. Write is the publication, until the broker confirmed it.
type Queue struct {
	Client queue.Client
	Model  string
	// Version, when set, is every request's Infer-Model-Version.
	Version string
	// Bodies are the requests' bodies, sent in turn; HeaderLengths their
	// binary extension's JSON lengths (-1: JSON only).
	Bodies        [][]byte
	HeaderLengths []int64
	next          atomic.Uint64
}

var _ Target = (*Queue)(nil)

// Do implements Target.
func (q *Queue) Do(ctx context.Context, r *Result) {
	i := q.next.Add(1) % uint64(len(q.Bodies))
	h := map[string]string{queue.HeaderRequestID: queue.NewID()}
	if q.Version != "" {
		h[queue.HeaderVersion] = q.Version
	}
	if hl := q.HeaderLengths[i]; hl >= 0 {
		h[protocol.HeaderContentLength] = strconv.FormatInt(hl, 10)
	}
	if d, ok := ctx.Deadline(); ok {
		h[queue.HeaderDeadline] = d.UTC().Format(time.RFC3339Nano)
	}
	r.Start = time.Now()
	res, err := q.Client.Send(ctx, q.Model, h, q.Bodies[i])
	r.End = time.Now()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			r.Err, r.Kind = err, KindTimeout
			return
		}
		r.Fail(err)
		return
	}
	r.Phases.Set(profile.Write, res.Stored.Sub(r.Start))
	if res.Status/100 != 2 {
		r.FailStatus(res.Status, string(res.Body))
		return
	}
	t, ok := profile.ParseServerTiming(res.Header[queue.HeaderServerTiming])
	if ok {
		for _, p := range append([]profile.Phase{profile.Broker}, profile.ServerPhases...) {
			r.Phases.Set(p, t.Get(p))
		}
	}
	r.ServerReported = ok
}

// newV2Queue is a queue target for o: the model's metadata and the
// requests' binary bodies come from its HTTP server (o.URL), the requests
// go through the broker at o.Queue.
func newV2Queue(ctx context.Context, o V2Options) (Target, Model, func(), error) {
	if o.Queue == "" {
		return nil, Model{}, nil, fmt.Errorf("--protocol %s needs the broker's URL (--queue nats://HOST:4222 or redis://HOST:6379)", o.Protocol)
	}
	if kind, _, _, err := queue.ParseURL(o.Queue); err != nil {
		return nil, Model{}, nil, err
	} else if kind != o.Protocol {
		return nil, Model{}, nil, fmt.Errorf("--protocol %s with a %s queue URL %q", o.Protocol, kind, o.Queue)
	}
	proto := o.Protocol
	o.Protocol, o.Conns, o.requestsOnly = ProtoHTTPBinary, 1, true
	t, m, closeHTTP, err := newV2HTTP(ctx, o)
	if err != nil {
		return nil, m, nil, err
	}
	closeHTTP()
	reqs := t.(*HTTP).Requests
	client, err := queue.Dial(ctx, o.Queue)
	if err != nil {
		return nil, m, nil, err
	}
	q := &Queue{Client: client, Model: m.Name, Version: o.Version}
	for _, r := range reqs {
		q.Bodies = append(q.Bodies, r.Body)
		hl := int64(-1)
		if v := r.Header.Get(protocol.HeaderContentLength); v != "" {
			hl, _ = strconv.ParseInt(v, 10, 64)
		}
		q.HeaderLengths = append(q.HeaderLengths, hl)
	}
	m.Protocol = proto
	return q, m, func() { client.Close() }, nil
}
