package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream stream names: requests (work-queue retention: a request
// leaves the stream when acknowledged), results and dead letters (kept
// for resultsMaxAge).
const (
	StreamRequests = "INFER_REQUESTS"
	StreamResults  = "INFER_RESULTS"
	StreamDead     = "INFER_DEAD"
	// resultsMaxAge bounds how long results and dead letters are kept.
	resultsMaxAge = 24 * time.Hour
)

// NATS is a JetStream broker.
type NATS struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	requests jetstream.Stream
	s        Settings
}

var _ Broker = (*NATS)(nil)

// OpenNATS connects to the NATS server at address and creates (or
// updates) the three streams.
func OpenNATS(ctx context.Context, address string, s Settings) (*NATS, error) {
	nc, err := nats.Connect(address, nats.Name("infer"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", address, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("queue %s: %w", address, err)
	}
	storage := jetstream.FileStorage
	if s.Memory {
		storage = jetstream.MemoryStorage
	}
	b := &NATS{nc: nc, js: js, s: s}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: StreamRequests, Subjects: []string{RequestsPrefix + ">"}, Retention: jetstream.WorkQueuePolicy, Storage: storage, Duplicates: s.Duplicates},
		{Name: StreamResults, Subjects: []string{ResultsPrefix + ">"}, Storage: storage, Duplicates: s.Duplicates, MaxAge: resultsMaxAge},
		{Name: StreamDead, Subjects: []string{DeadPrefix + ">"}, Storage: storage, Duplicates: s.Duplicates, MaxAge: resultsMaxAge},
	} {
		st, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("queue %s: stream %s: %w (is JetStream enabled on the server?)", address, cfg.Name, err)
		}
		if cfg.Name == StreamRequests {
			b.requests = st
		}
	}
	return b, nil
}

// Kind implements Broker.
func (b *NATS) Kind() string { return KindNATS }

// Close implements Broker.
func (b *NATS) Close() error { b.nc.Close(); return nil }

// Consumer implements Broker: a durable pull consumer "infer-MODEL" on
// the model's subject, explicit acknowledgements, redelivery after the
// ack wait, no delivery limit (the front end dead-letters).
func (b *NATS) Consumer(ctx context.Context, model string) (Consumer, error) {
	if err := ValidModel(model); err != nil {
		return nil, err
	}
	c, err := b.requests.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "infer-" + model, FilterSubject: RequestsPrefix + model,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: b.s.AckWait, MaxDeliver: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("queue consumer for %s: %w", model, err)
	}
	return &natsConsumer{b: b, c: c, model: model}, nil
}

type natsConsumer struct {
	b     *NATS
	c     jetstream.Consumer
	model string
}

func (c *natsConsumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]Delivery, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	// What waits now, up to max; when nothing does, one request as soon
	// as it comes (a pull for max would wait for max, or for wait). A
	// fetch outlives ctx by at most wait: a pull cannot be withdrawn.
	out, err := c.fetch(func() (jetstream.MessageBatch, error) { return c.c.FetchNoWait(max) })
	if len(out) > 0 || err != nil {
		return out, err
	}
	return c.fetch(func() (jetstream.MessageBatch, error) { return c.c.Fetch(1, jetstream.FetchMaxWait(wait)) })
}

func (c *natsConsumer) fetch(pull func() (jetstream.MessageBatch, error)) ([]Delivery, error) {
	batch, err := pull()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", c.model, err)
	}
	var out []Delivery
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			continue
		}
		out = append(out, &natsDelivery{c: c, m: m, meta: meta})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return out, fmt.Errorf("fetch %s: %w", c.model, err)
	}
	return out, nil
}

func (c *natsConsumer) Backlog(ctx context.Context) (Backlog, error) {
	info, err := c.c.Info(ctx)
	if err != nil {
		return Backlog{}, err
	}
	bl := Backlog{Lag: int64(info.NumPending)}
	if info.NumPending+uint64(info.NumAckPending) == 0 {
		return bl, nil
	}
	// Work-queue retention: the first message on the subject is the
	// oldest not acknowledged.
	m, err := c.b.requests.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(RequestsPrefix+c.model))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return bl, nil
		}
		return bl, err
	}
	bl.Oldest = m.Time
	return bl, nil
}

type natsDelivery struct {
	c    *natsConsumer
	m    jetstream.Msg
	meta *jetstream.MsgMetadata
}

func (d *natsDelivery) Body() []byte              { return d.m.Data() }
func (d *natsDelivery) Header(name string) string { return d.m.Headers().Get(name) }
func (d *natsDelivery) Published() time.Time      { return d.meta.Timestamp }
func (d *natsDelivery) Attempt() int              { return int(d.meta.NumDelivered) }

func (d *natsDelivery) ID() string {
	if id := d.Header(HeaderRequestID); id != "" {
		return id
	}
	if id := d.Header(nats.MsgIdHdr); id != "" {
		return id
	}
	return strconv.FormatUint(d.meta.Sequence.Stream, 10)
}

// Answered implements Delivery: JetStream deduplicates requests as they
// are published (Nats-Msg-Id) and results as they are stored, so a
// request redelivered after its result was stored is run again and its
// second result dropped by the results stream.
func (d *natsDelivery) Answered(context.Context) (bool, error) { return false, nil }

func (d *natsDelivery) Ack(ctx context.Context) error { return d.m.DoubleAck(ctx) }

func (d *natsDelivery) Answer(ctx context.Context, r *Reply) error {
	if d.badReplyTo() != "" {
		// No answer can be published there, now or on a redelivery: the
		// request is dead-lettered with the reason rather than redelivered
		// for good (an invalid subject) or answered into a requests
		// stream (queued again as a request).
		return d.DeadLetter(ctx, r, fmt.Sprintf("the answer had status %d", r.Status))
	}
	if err := d.publish(ctx, d.replyTo(), d.ID(), r); err != nil {
		return err
	}
	// The acknowledgement follows the result on the same connection; one
	// lost is a redelivery, whose second result is dropped by the results
	// stream (or, on a client's inbox, by the client), so it is not
	// awaited.
	return d.m.Ack()
}

func (d *natsDelivery) Retry(_ context.Context, delay time.Duration) error {
	return d.m.NakWithDelay(delay)
}

func (d *natsDelivery) DeadLetter(ctx context.Context, r *Reply, why string) error {
	bad := d.badReplyTo()
	if bad != "" {
		why += "; " + bad
	}
	if err := d.deadLetterOnly(ctx, why); err != nil {
		return err
	}
	if bad == "" {
		if err := d.publish(ctx, d.replyTo(), d.ID(), r); err != nil {
			return err
		}
	}
	return d.m.Term()
}

// deadLetterOnly publishes the request to its model's dead-letter subject
// with why, and neither answers nor acknowledges it.
func (d *natsDelivery) deadLetterOnly(ctx context.Context, why string) error {
	msg := nats.NewMsg(DeadPrefix + d.c.model)
	msg.Data = d.m.Data()
	for k, v := range d.m.Headers() {
		msg.Header[k] = v
	}
	msg.Header.Set(HeaderError, why)
	msg.Header.Set(HeaderAttempts, strconv.Itoa(d.Attempt()))
	msg.Header.Del(nats.MsgIdHdr)
	if _, err := d.c.b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(d.ID())); err != nil {
		return fmt.Errorf("dead letter %s: %w", d.ID(), err)
	}
	return nil
}

// replyTo is where the result goes: the request's reply address, else
// the model's results subject.
func (d *natsDelivery) replyTo() string {
	if to := d.Header(HeaderReplyTo); to != "" {
		return to
	}
	return ResultsPrefix + d.c.model
}

// badReplyTo says why the request's reply address can take no answer,
// or "" when it can (or there is none).
func (d *natsDelivery) badReplyTo() string {
	to := d.Header(HeaderReplyTo)
	switch {
	case to == "":
		return ""
	case !server.IsValidPublishSubject(to):
		return fmt.Sprintf("%s %q is not a subject an answer can be published to (want tokens separated by dots, no spaces or wildcards)", HeaderReplyTo, to)
	case strings.HasPrefix(to, RequestsPrefix):
		return fmt.Sprintf("%s %q is a requests subject: the answer would be queued as a request", HeaderReplyTo, to)
	}
	return ""
}

// publish sends r to subject: through JetStream, deduplicated by id and
// confirmed, when a stream stores the subject (the results stream);
// plainly to a client's inbox otherwise, ahead of the acknowledgement on
// the same connection, so that the server sees the result first.
func (d *natsDelivery) publish(ctx context.Context, subject, id string, r *Reply) error {
	msg := nats.NewMsg(subject)
	msg.Data = r.Body
	for k, v := range r.Header {
		msg.Header.Set(k, v)
	}
	msg.Header.Set(HeaderStatus, strconv.Itoa(r.Status))
	msg.Header.Set(HeaderRequestID, id)
	if strings.HasPrefix(subject, ResultsPrefix) || strings.HasPrefix(subject, DeadPrefix) {
		if _, err := d.c.b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
			return fmt.Errorf("publish result %s to %s: %w", id, subject, err)
		}
		return nil
	}
	if err := d.c.b.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("publish result %s to %s: %w", id, subject, err)
	}
	return nil
}
