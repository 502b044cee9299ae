package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// Result is a request's result as a client receives it.
type Result struct {
	// Status is the HTTP status the server answered with.
	Status int
	Header map[string]string
	Body   []byte
	// Stored is when the broker confirmed it stored the request.
	Stored time.Time
}

// Client publishes requests to a broker and waits for their results on
// a reply address of its own; it is safe for concurrent use.
type Client interface {
	// Send publishes body as a request for model, with header (a
	// HeaderRequestID is made when it has none), and waits for its result.
	Send(ctx context.Context, model string, header map[string]string, body []byte) (*Result, error)
	Close() error
}

// Dial connects a client to the broker at a URL ParseURL reads.
func Dial(ctx context.Context, raw string) (Client, error) {
	kind, address, _, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if kind == KindNATS {
		return dialNATS(address)
	}
	return dialRedis(ctx, address)
}

// NewID returns a random request id: 16 bytes in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waiters matches results to the requests waiting for them, by id.
type waiters struct {
	mu sync.Mutex
	by map[string]chan *Result
}

func (w *waiters) add(id string) chan *Result {
	ch := make(chan *Result, 1)
	w.mu.Lock()
	if w.by == nil {
		w.by = map[string]chan *Result{}
	}
	w.by[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) remove(id string) {
	w.mu.Lock()
	delete(w.by, id)
	w.mu.Unlock()
}

// deliver hands r to the request id waits for; a result nobody waits
// for (a duplicate, or one whose sender gave up) is dropped.
func (w *waiters) deliver(id string, r *Result) {
	w.mu.Lock()
	ch := w.by[id]
	delete(w.by, id)
	w.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// wait waits for ch's result or ctx's end.
func (w *waiters) wait(ctx context.Context, id string, ch chan *Result, stored time.Time) (*Result, error) {
	select {
	case r := <-ch:
		r.Stored = stored
		return r, nil
	case <-ctx.Done():
		w.remove(id)
		return nil, ctx.Err()
	}
}

func statusOf(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

type natsClient struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	inbox string
	sub   *nats.Subscription
	w     waiters
}

func dialNATS(address string) (*natsClient, error) {
	nc, err := nats.Connect(address, nats.Name("infer client"))
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", address, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &natsClient{nc: nc, js: js, inbox: nats.NewInbox()}
	c.sub, err = nc.Subscribe(c.inbox, func(m *nats.Msg) {
		r := &Result{Status: statusOf(m.Header.Get(HeaderStatus)), Header: map[string]string{}, Body: m.Data}
		for k := range m.Header {
			r.Header[k] = m.Header.Get(k)
		}
		c.w.deliver(m.Header.Get(HeaderRequestID), r)
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	// A burst of results must not be dropped as a slow consumer's.
	_ = c.sub.SetPendingLimits(-1, 256<<20)
	return c, nil
}

func (c *natsClient) Send(ctx context.Context, model string, header map[string]string, body []byte) (*Result, error) {
	msg := nats.NewMsg(RequestsPrefix + model)
	msg.Data = body
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	id := msg.Header.Get(HeaderRequestID)
	if id == "" {
		id = NewID()
		msg.Header.Set(HeaderRequestID, id)
	}
	msg.Header.Set(HeaderReplyTo, c.inbox)
	ch := c.w.add(id)
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		c.w.remove(id)
		return nil, fmt.Errorf("publish to %s: %w", msg.Subject, err)
	}
	return c.w.wait(ctx, id, ch, time.Now())
}

func (c *natsClient) Close() error {
	_ = c.sub.Unsubscribe()
	c.nc.Close()
	return nil
}

type redisClient struct {
	rdb     *redis.Client
	replies string
	w       waiters
	stop    context.CancelFunc
	done    chan struct{}
}

func dialRedis(ctx context.Context, address string) (*redisClient, error) {
	rdb, err := connectRedis(ctx, address)
	if err != nil {
		return nil, err
	}
	read, stop := context.WithCancel(context.Background())
	c := &redisClient{rdb: rdb, replies: "infer:replies:" + NewID(), stop: stop, done: make(chan struct{})}
	go c.read(read)
	return c, nil
}

// read takes results from the client's reply stream until ctx ends,
// deleting each once handed on.
func (c *redisClient) read(ctx context.Context) {
	defer close(c.done)
	last := "0-0"
	for ctx.Err() == nil {
		res, err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{c.replies, last}, Count: 512, Block: time.Second}).Result()
		if err != nil {
			if errors.Is(err, redis.Nil) || ctx.Err() != nil {
				continue
			}
			time.Sleep(100 * time.Millisecond) // the server is away: try again
			continue
		}
		var ids []string
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				ids = append(ids, m.ID)
				r := &Result{Header: map[string]string{}}
				for k, v := range m.Values {
					s, _ := v.(string)
					if k == BodyField {
						r.Body = []byte(s)
					} else {
						r.Header[k] = s
					}
				}
				r.Status = statusOf(r.Header[HeaderStatus])
				c.w.deliver(r.Header[HeaderRequestID], r)
			}
		}
		c.rdb.XDel(ctx, c.replies, ids...)
	}
}

func (c *redisClient) Send(ctx context.Context, model string, header map[string]string, body []byte) (*Result, error) {
	id := header[HeaderRequestID]
	values := make([]any, 0, 2*len(header)+4)
	for k, v := range header {
		values = append(values, k, v)
	}
	if id == "" {
		id = NewID()
		values = append(values, HeaderRequestID, id)
	}
	values = append(values, HeaderReplyTo, c.replies, BodyField, body)
	ch := c.w.add(id)
	stream := redisKey(RequestsPrefix + model)
	if err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: values}).Err(); err != nil {
		c.w.remove(id)
		return nil, fmt.Errorf("publish to %s: %w", stream, err)
	}
	return c.w.wait(ctx, id, ch, time.Now())
}

func (c *redisClient) Close() error {
	c.stop()
	<-c.done
	c.rdb.Del(context.Background(), c.replies)
	return c.rdb.Close()
}
