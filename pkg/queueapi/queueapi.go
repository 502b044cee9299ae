// Package queueapi is infer's queue front end: it pulls Open Inference
// Protocol requests from a message broker (NATS JetStream or Redis
// Streams, pkg/queue), hands each to the serving core as a core.Call and
// publishes the answer HTTP would give, byte for byte, with its status.
// Delivery is at least once: a request is acknowledged only after its
// result is published; a failure of the server's (a 5xx, a full queue)
// is retried with back-off, and a request that fails MaxAttempts times
// goes to the dead-letter stream with its error. Each model's consumer
// fetches only as many requests as it has room for (MaxInflight), so that
// a burst waits in the broker, not in the server's memory.
package queueapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/runner"
)

// Options configure a Frontend.
type Options struct {
	// MaxInflight bounds the requests one model's consumer holds at once,
	// fetched and not yet answered (0: DefaultMaxInflight).
	MaxInflight int
	// MaxAttempts is how many deliveries a request gets before it goes to
	// the dead-letter stream (0: DefaultMaxAttempts).
	MaxAttempts int
	// Backoff is the delay before a failed request's second delivery,
	// doubled for each one after, up to a minute (0: DefaultBackoff).
	Backoff time.Duration
	// FetchWait is how long one fetch waits for a request (0: one second):
	// it bounds how long a stop waits for the fetch in flight.
	FetchWait time.Duration
	// GracePeriod bounds how long a stop waits for the requests held to
	// be answered; those still running then are handed back to the broker
	// unacknowledged (0: 30 s).
	GracePeriod time.Duration
	// Rescan is how often the repository is read for new models to
	// consume (0: DefaultRescan).
	Rescan time.Duration
	// MaxBodyBytes is the largest request body answered: a larger one is
	// answered 413 without being decoded (0: no bound). Four times it
	// bounds the bodies one model's consumer holds at once (see consume).
	MaxBodyBytes int64
}

// Defaults of Options.
const (
	DefaultMaxInflight = 64
	DefaultMaxAttempts = 5
	DefaultBackoff     = 100 * time.Millisecond
	DefaultRescan      = 10 * time.Second
	maxBackoff         = time.Minute
)

// Frontend consumes a broker's request streams into a serving core.
type Frontend struct {
	core    *core.Core
	broker  queue.Broker
	opts    Options
	log     *slog.Logger
	metrics *metrics
}

// New returns the queue front end of c fed by b.
func New(c *core.Core, b queue.Broker, opts Options) *Frontend {
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.FetchWait <= 0 {
		opts.FetchWait = time.Second
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 30 * time.Second
	}
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	return &Frontend{core: c, broker: b, opts: opts, log: c.Logger(), metrics: newMetrics(b.Kind())}
}

// Run consumes every model of the repository (and models added later,
// read every Options.Rescan) until ctx ends; then it stops fetching,
// answers what it holds (within Options.GracePeriod) and returns. It
// returns an error only when no consumer could be made at the start.
// Its metrics are in the core's registry while it runs.
func (f *Frontend) Run(ctx context.Context) error {
	if err := f.core.Registry().Register(f.metrics); err != nil {
		return fmt.Errorf("queue metrics: %w (one queue front end per server)", err)
	}
	defer f.core.Registry().Unregister(f.metrics)
	var wg sync.WaitGroup
	defer wg.Wait()
	started := map[string]bool{}
	scan := func() error {
		names, err := f.core.Repository().List()
		if err != nil {
			return err
		}
		var failed error
		for _, name := range names {
			if started[name] {
				continue
			}
			c, err := f.broker.Consumer(ctx, name)
			if err != nil {
				f.log.Warn("queue: model not consumed", "model", name, "err", err)
				failed = err
				continue
			}
			started[name] = true
			f.metrics.watch(name, c)
			wg.Go(func() { f.consume(ctx, name, c) })
		}
		if len(started) == 0 && failed != nil {
			return failed
		}
		return nil
	}
	if err := scan(); err != nil {
		return fmt.Errorf("queue %s: %w", f.broker.Kind(), err)
	}
	tick := time.NewTicker(f.opts.Rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := scan(); err != nil {
				f.log.Warn("queue: repository not read", "err", err)
			}
		}
	}
}

// consume is one model's loop: fetch as many requests as there is room
// for, run each in its own goroutine, and on ctx's end wait for them.
func (f *Frontend) consume(ctx context.Context, model string, c queue.Consumer) {
	// work outlives ctx by the grace period, so that what is held is
	// answered rather than dropped.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(f.opts.GracePeriod, cancel)
		<-work.Done()
		t.Stop()
	})
	defer stop()
	var held sync.WaitGroup
	defer held.Wait()
	slots := make(chan struct{}, f.opts.MaxInflight)
	bodies := newBodyBudget(4 * f.opts.MaxBodyBytes)
	failures := 0
	for ctx.Err() == nil {
		if !bodies.wait(ctx) {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		room := 1
		for room < bodies.room(f.opts.MaxInflight) {
			select {
			case slots <- struct{}{}:
				room++
				continue
			default:
			}
			break
		}
		got, err := c.Fetch(ctx, room, f.opts.FetchWait)
		for range room - len(got) {
			<-slots
		}
		for _, d := range got {
			n := bodies.take(len(d.Body()))
			held.Go(func() {
				defer func() { <-slots; bodies.give(n) }()
				f.handle(work, model, d)
			})
		}
		if err != nil && ctx.Err() == nil {
			failures++
			f.log.Warn("queue: fetch failed", "model", model, "err", err)
			select { // the broker is away: back off, up to FetchWait
			case <-time.After(min(time.Duration(failures)*100*time.Millisecond, f.opts.FetchWait)):
			case <-ctx.Done():
			}
		} else {
			failures = 0
		}
	}
}

// handle answers one request, retries it, or dead-letters it.
func (f *Frontend) handle(ctx context.Context, model string, d queue.Delivery) {
	start := time.Now()
	obs := f.metrics.of(model)
	if d.Attempt() > 1 {
		obs.redeliveries.Add(1)
	}
	if done, err := d.Answered(ctx); err == nil && done {
		obs.duplicates.Add(1)
		f.settle(d.Ack(ctx), model, d)
		return
	}
	if d.Attempt() > f.opts.MaxAttempts {
		// Delivered past the limit with no answer: its holders stopped
		// (or crashed) while it ran.
		why := fmt.Sprintf("delivered %d times without an answer", d.Attempt())
		obs.dead.Add(1)
		f.settle(d.DeadLetter(ctx, errorReply(http.StatusInternalServerError, why), why), model, d)
		return
	}
	reply, err := f.infer(ctx, model, d, start)
	if err == nil {
		obs.answered.Add(1)
		f.settle(d.Answer(ctx, reply), model, d)
		return
	}
	status := core.Status(err)
	switch {
	case ctx.Err() != nil:
		// Stopping past the grace period: handed back, unacknowledged.
		hand, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.settle(d.Retry(hand, 0), model, d)
	case retryable(status) && d.Attempt() < f.opts.MaxAttempts:
		obs.retried.Add(1)
		f.settle(d.Retry(ctx, f.backoff(d.Attempt())), model, d)
	case retryable(status):
		obs.dead.Add(1)
		f.settle(d.DeadLetter(ctx, errorReply(status, err.Error()), err.Error()), model, d)
	default:
		obs.answered.Add(1)
		f.settle(d.Answer(ctx, errorReply(status, err.Error())), model, d)
	}
}

// settle logs a failure to answer, retry or acknowledge: the broker
// delivers the request again after its ack wait.
func (f *Frontend) settle(err error, model string, d queue.Delivery) {
	if err != nil {
		f.log.Warn("queue: request left for redelivery", "model", model, "id", d.ID(), "err", err)
	}
}

// infer runs one request through the core: the reply on success, or the
// error.
func (f *Frontend) infer(ctx context.Context, model string, d queue.Delivery, start time.Time) (*queue.Reply, error) {
	var deadline time.Time
	if v := d.Header(queue.HeaderDeadline); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fmt.Errorf("%w: header %s %q: want an RFC 3339 time such as 2026-01-02T15:04:05.5Z", protocol.ErrBadRequest, queue.HeaderDeadline, v)
		}
		if !start.Before(t) {
			return nil, fmt.Errorf("%w: the request's deadline %s passed before it was fetched", context.DeadlineExceeded, v)
		}
		deadline = t
	}
	if n := int64(len(d.Body())); f.opts.MaxBodyBytes > 0 && n > f.opts.MaxBodyBytes {
		return nil, fmt.Errorf("%w: a body of %d bytes, over the server's %d (--max-body-bytes)", runner.ErrTooLarge, n, f.opts.MaxBodyBytes)
	}
	var req *protocol.InferRequest
	var body []byte
	headerLength := int64(-1)
	call := &core.Call{Model: model, Version: d.Header(queue.HeaderVersion), Protocol: f.broker.Kind(), Start: start, Header: d.Header,
		Decode: func(c *core.Call) (err error) {
			hl, err := protocol.ParseHeaderLength(d.Header(protocol.HeaderContentLength))
			if err != nil {
				return err
			}
			if req, err = protocol.DecodeRequest(d.Body(), hl); err != nil {
				return err
			}
			if err := httpapi.CallOf(c, req); err != nil {
				return err
			}
			if !deadline.IsZero() {
				if left := time.Until(deadline); c.Timeout <= 0 || left < c.Timeout {
					c.Timeout = max(left, time.Microsecond)
				}
			}
			return nil
		},
		Encode: func(res *core.Result) (err error) {
			body, headerLength, err = httpapi.ResponseOf(req, res).Encode()
			return err
		},
	}
	res, err := f.core.Infer(ctx, call)
	if err != nil {
		return nil, err
	}
	res.Timing.Set(profile.Broker, max(start.Sub(d.Published()), 0))
	h := map[string]string{
		queue.HeaderServerTiming: string(res.Timing.AppendServerTiming(make([]byte, 0, 160))),
		httpapi.BatchSizeHeader:  strconv.Itoa(res.Timing.BatchSize),
	}
	if headerLength >= 0 {
		h[protocol.HeaderContentLength] = strconv.FormatInt(headerLength, 10)
	}
	if res.Via != "" {
		h[core.FallbackHeader] = res.Via
	}
	return &queue.Reply{Status: http.StatusOK, Header: h, Body: body}, nil
}

// errorReply is the protocol's error object with status, as HTTP answers.
func errorReply(status int, msg string) *queue.Reply {
	body, _ := json.Marshal(protocol.Error{Error: msg})
	return &queue.Reply{Status: status, Body: body}
}

// retryable reports whether a request failing with status may succeed
// later: the server's failures and refusals, not the client's mistakes.
func retryable(status int) bool {
	return slices.Contains([]int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable}, status)
}

// backoff is the delay before delivery attempt+1.
func (f *Frontend) backoff(attempt int) time.Duration {
	d := f.opts.Backoff
	for range attempt - 1 {
		if d *= 2; d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}
