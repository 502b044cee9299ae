package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys beside the streams: a request id answered within the
// deduplication window is DoneKeyPrefix+ID, with that expiry.
const (
	// Group is the consumer group every server joins.
	Group         = "infer"
	DoneKeyPrefix = "infer:done:"
	// BodyField is the stream entry's field holding the request or result
	// body; every other field is a header.
	BodyField = "body"
	// resultsMaxLen bounds (approximately) a results or dead-letter
	// stream's entries.
	resultsMaxLen = 1_000_000
)

// answerScript publishes a result and acknowledges its request in one
// step, so that a crash leaves either both or neither: the result is
// added only when the id's done key is new (a duplicate is answered
// once), then the request is acknowledged and deleted. A reply key that
// holds something other than a stream changes nothing and returns the
// key's type: Redis does not roll a script back, so the XADD that would
// fail on it must not follow the done key's SET.
//
// KEYS: done key, reply stream, request stream. ARGV: group, entry id,
// window in milliseconds, max length, then field, value pairs.
var answerScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'stream' then
  return t
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 'stream'`)

// Redis is a Redis Streams broker.
type Redis struct {
	rdb  *redis.Client
	name string
	s    Settings
}

var _ Broker = (*Redis)(nil)

// OpenRedis connects to the Redis server at address (redis://HOST:PORT[/DB]);
// name is this process's consumer name in each model's group.
func OpenRedis(ctx context.Context, address, name string, s Settings) (*Redis, error) {
	rdb, err := connectRedis(ctx, address)
	if err != nil {
		return nil, err
	}
	return &Redis{rdb: rdb, name: name, s: s}, nil
}

// connectRedis connects to the Redis server at address and checks that
// it answers.
func connectRedis(ctx context.Context, address string) (*redis.Client, error) {
	opts, err := redis.ParseURL(address)
	if err != nil {
		return nil, fmt.Errorf("queue URL %q: %w", address, err)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("queue %s: %w", address, err)
	}
	return rdb, nil
}

// Kind implements Broker.
func (b *Redis) Kind() string { return KindRedis }

// Close implements Broker.
func (b *Redis) Close() error { return b.rdb.Close() }

// Consumer implements Broker: the model's stream with the group "infer",
// created when missing.
func (b *Redis) Consumer(ctx context.Context, model string) (Consumer, error) {
	if err := ValidModel(model); err != nil {
		return nil, err
	}
	stream := redisKey(RequestsPrefix + model)
	if err := b.rdb.XGroupCreateMkStream(ctx, stream, Group, "0").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("queue consumer group for %s: %w", model, err)
	}
	return &redisConsumer{b: b, model: model, stream: stream, claim: "0-0"}, nil
}

type redisConsumer struct {
	b             *Redis
	model, stream string
	claim         string // XAUTOCLAIM's cursor
}

// Fetch implements Consumer: first the requests another consumer (or an
// earlier life of this one) held past the ack wait, then new ones.
func (c *redisConsumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]Delivery, error) {
	msgs, next, err := c.b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: c.stream, Group: Group, Consumer: c.b.name,
		MinIdle: c.b.s.AckWait, Start: c.claim, Count: int64(max)}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("fetch %s: %w", c.model, err)
	}
	c.claim = next
	var out []Delivery
	for _, m := range msgs {
		attempt := 2
		if p, err := c.b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: c.stream, Group: Group, Start: m.ID, End: m.ID, Count: 1}).Result(); err == nil && len(p) == 1 {
			attempt = int(p[0].RetryCount)
		}
		out = append(out, c.delivery(m, attempt))
	}
	if len(out) > 0 {
		return out, nil
	}
	res, err := c.b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: c.b.name,
		Streams: []string{c.stream, ">"}, Count: int64(max), Block: wait}).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) || ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("fetch %s: %w", c.model, err)
	}
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, c.delivery(m, 1))
		}
	}
	return out, nil
}

func (c *redisConsumer) delivery(m redis.XMessage, attempt int) *redisDelivery {
	d := &redisDelivery{c: c, id: m.ID, attempt: attempt, header: map[string]string{}}
	for k, v := range m.Values {
		s, _ := v.(string)
		if k == BodyField {
			d.body = []byte(s)
		} else {
			d.header[k] = s
		}
	}
	return d
}

// Backlog implements Consumer: the group's lag, and the oldest entry
// still in the stream (answered entries are deleted).
func (c *redisConsumer) Backlog(ctx context.Context) (Backlog, error) {
	groups, err := c.b.rdb.XInfoGroups(ctx, c.stream).Result()
	if err != nil {
		return Backlog{}, err
	}
	var bl Backlog
	for _, g := range groups {
		if g.Name == Group {
			bl.Lag = max(g.Lag, 0)
		}
	}
	first, err := c.b.rdb.XRangeN(ctx, c.stream, "-", "+", 1).Result()
	if err != nil || len(first) == 0 {
		return bl, err
	}
	bl.Oldest = entryTime(first[0].ID)
	return bl, nil
}

// entryTime is when Redis stored the entry id ("MS-SEQ").
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

type redisDelivery struct {
	c       *redisConsumer
	id      string
	attempt int
	body    []byte
	header  map[string]string
}

func (d *redisDelivery) Body() []byte              { return d.body }
func (d *redisDelivery) Header(name string) string { return d.header[name] }
func (d *redisDelivery) Published() time.Time      { return entryTime(d.id) }
func (d *redisDelivery) Attempt() int              { return d.attempt }

func (d *redisDelivery) ID() string {
	if id := d.header[HeaderRequestID]; id != "" {
		return id
	}
	return d.id
}

func (d *redisDelivery) Answered(ctx context.Context) (bool, error) {
	n, err := d.c.b.rdb.Exists(ctx, DoneKeyPrefix+d.ID()).Result()
	return n > 0, err
}

func (d *redisDelivery) Ack(ctx context.Context) error {
	_, err := d.c.b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, d.c.stream, Group, d.id)
		p.XDel(ctx, d.c.stream, d.id)
		return nil
	})
	return err
}

func (d *redisDelivery) Answer(ctx context.Context, r *Reply) error {
	to := d.header[HeaderReplyTo]
	if to == "" {
		to = redisKey(ResultsPrefix + d.c.model)
	}
	why := d.badReplyTo()
	if why == "" {
		args := []any{Group, d.id, d.c.b.s.Duplicates.Milliseconds(), resultsMaxLen,
			HeaderStatus, strconv.Itoa(r.Status), HeaderRequestID, d.ID()}
		for k, v := range r.Header {
			args = append(args, k, v)
		}
		args = append(args, BodyField, r.Body)
		t, err := answerScript.Run(ctx, d.c.b.rdb, []string{DoneKeyPrefix + d.ID(), to, d.c.stream}, args...).Text()
		if err != nil {
			return fmt.Errorf("publish result %s to %s: %w", d.ID(), to, err)
		}
		if t == "stream" {
			return nil
		}
		why = fmt.Sprintf("%s %q holds a %s, not a stream", HeaderReplyTo, to, t)
	}
	// No answer can be published there, now or on a redelivery: the
	// request goes to the dead-letter stream with the reason, and is
	// acknowledged, rather than retried until it is taken for a duplicate
	// and lost.
	if err := d.deadLetterOnly(ctx, fmt.Sprintf("%s: the answer (status %d) cannot be published there", why, r.Status)); err != nil {
		return err
	}
	return d.Ack(ctx)
}

// Retry implements Delivery: the entry stays pending, its idle time set
// so that XAUTOCLAIM takes it again after delay.
func (d *redisDelivery) Retry(ctx context.Context, delay time.Duration) error {
	idle := max(d.c.b.s.AckWait-delay, 0)
	return d.c.b.rdb.Do(ctx, "XCLAIM", d.c.stream, Group, d.c.b.name, 0, d.id, "IDLE", idle.Milliseconds(), "JUSTID").Err()
}

func (d *redisDelivery) DeadLetter(ctx context.Context, r *Reply, why string) error {
	bad := d.badReplyTo()
	if bad != "" {
		why += "; " + bad
	}
	if err := d.deadLetterOnly(ctx, why); err != nil {
		return err
	}
	if bad != "" {
		return d.Ack(ctx)
	}
	return d.Answer(ctx, r)
}

// badReplyTo says why the request's reply address can take no answer, or
// "" when it may: an answer added to a requests stream would be queued as
// a request.
func (d *redisDelivery) badReplyTo() string {
	if to := d.header[HeaderReplyTo]; strings.HasPrefix(to, redisKey(RequestsPrefix)) {
		return fmt.Sprintf("%s %q is a requests stream: the answer would be queued as a request", HeaderReplyTo, to)
	}
	return ""
}

// deadLetterOnly adds the request to its model's dead-letter stream with
// why, and neither answers nor acknowledges it.
func (d *redisDelivery) deadLetterOnly(ctx context.Context, why string) error {
	values := []any{HeaderError, why, HeaderAttempts, strconv.Itoa(d.attempt)}
	for k, v := range d.header {
		values = append(values, k, v)
	}
	values = append(values, BodyField, d.body)
	if err := d.c.b.rdb.XAdd(ctx, &redis.XAddArgs{Stream: redisKey(DeadPrefix + d.c.model), MaxLen: resultsMaxLen, Approx: true, Values: values}).Err(); err != nil {
		return fmt.Errorf("dead letter %s: %w", d.ID(), err)
	}
	return nil
}
