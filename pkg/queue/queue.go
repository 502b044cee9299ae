// Package queue is the broker side of queue-fed inference: the wire
// contract of a request and its result on NATS JetStream and Redis
// Streams (subjects, stream keys, headers), the consumers a server pulls
// requests through, and the client that publishes them and waits for
// their results. It knows nothing of models or the serving core; the
// front end that calls the core is pkg/queueapi.
//
// A request is a message whose body is an Open Inference Protocol infer
// request, JSON or with the binary tensor extension, exactly as an HTTP
// body; its headers carry what HTTP carries in the path and headers:
//
//	subject or stream    infer.requests.MODEL (NATS), infer:requests:MODEL (Redis)
//	Infer-Request-Id     the id results are deduplicated by (also Nats-Msg-Id)
//	Infer-Model-Version  the version (empty: the model's traffic policy)
//	Infer-Deadline       RFC 3339 time past which the result is a 504
//	Infer-Reply-To       where the result goes (default: the results stream)
//	Inference-Header-Content-Length  the binary extension's JSON length
//
// The result's body is what HTTP would answer, byte for byte; Infer-Status
// holds the HTTP status, Server-Timing the latency budget with the time
// spent in the broker ("broker").
package queue

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Header names of requests and results.
const (
	HeaderRequestID = "Infer-Request-Id"
	HeaderVersion   = "Infer-Model-Version"
	HeaderDeadline  = "Infer-Deadline"
	HeaderReplyTo   = "Infer-Reply-To"
	// HeaderStatus is a result's HTTP status code (200, 400, 503, ...).
	HeaderStatus = "Infer-Status"
	// HeaderError and HeaderAttempts annotate a dead letter: the last
	// error, and how many times the request was delivered.
	HeaderError    = "Infer-Error"
	HeaderAttempts = "Infer-Attempts"
	// HeaderServerTiming is the W3C Server-Timing value of a result.
	HeaderServerTiming = "Server-Timing"
)

// Subjects (NATS) and key prefixes (Redis). A model's requests are
// published to RequestsPrefix+MODEL; results without a reply address go
// to ResultsPrefix+MODEL, dead letters to DeadPrefix+MODEL. Redis keys use
// ':' where NATS subjects use '.'.
const (
	RequestsPrefix = "infer.requests."
	ResultsPrefix  = "infer.results."
	DeadPrefix     = "infer.dead."
)

// redisKey is the Redis key of a subject: the same words joined by ':'.
func redisKey(subject string) string { return strings.ReplaceAll(subject, ".", ":") }

// Reply is a request's answer as the front end publishes it.
type Reply struct {
	// Status is the HTTP status the same request gets over HTTP.
	Status int
	// Header holds the result's headers (HeaderStatus is added on
	// publication); Body is the HTTP response body.
	Header map[string]string
	Body   []byte
}

// Delivery is one request as a consumer fetched it. It is answered,
// retried or dead-lettered exactly once.
type Delivery interface {
	// Body is the request's body; Header a header, "" when absent.
	Body() []byte
	Header(name string) string
	// ID is the request id: HeaderRequestID, else the broker's own.
	ID() string
	// Published is when the broker stored the request; Attempt counts
	// deliveries, 1 the first.
	Published() time.Time
	Attempt() int
	// Answered reports whether a request with this id was answered
	// already, within the deduplication window: it is then acknowledged
	// (Ack) and not run again.
	Answered(ctx context.Context) (bool, error)
	// Ack acknowledges the request without answering it.
	Ack(ctx context.Context) error
	// Answer publishes r to the request's reply address (deduplicated by
	// its id), then acknowledges the request: at least once, and never an
	// acknowledgement without a result.
	Answer(ctx context.Context, r *Reply) error
	// Retry hands the request back for another delivery after delay.
	Retry(ctx context.Context, delay time.Duration) error
	// DeadLetter stores the request with why in the dead-letter stream,
	// answers it with r, and acknowledges it.
	DeadLetter(ctx context.Context, r *Reply, why string) error
}

// Backlog is what waits in a model's stream.
type Backlog struct {
	// Lag counts the requests stored and not yet delivered.
	Lag int64
	// Oldest is when the oldest unacknowledged request was stored,
	// delivered or not; zero when none waits.
	Oldest time.Time
}

// Consumer pulls one model's requests.
type Consumer interface {
	// Fetch returns at most max requests, waiting up to wait for the
	// first; none (and no error) when none came.
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Delivery, error)
	// Backlog reads the model's backlog from the broker.
	Backlog(ctx context.Context) (Backlog, error)
}

// Broker is a connection to a message broker a server consumes from.
type Broker interface {
	// Kind is "nats" or "redis": the protocol label of its requests.
	Kind() string
	// Consumer creates (or joins) the model's request stream and its
	// consumer group.
	Consumer(ctx context.Context, model string) (Consumer, error)
	Close() error
}

// Settings are a broker URL's query parameters, the same for both
// brokers: nats://host:4222?ack_wait=30s&duplicates=2m.
type Settings struct {
	// AckWait is how long a fetched request may stay unacknowledged
	// before the broker delivers it again (its holder presumed dead).
	AckWait time.Duration
	// Duplicates is the deduplication window: a request id seen within
	// it is answered once.
	Duplicates time.Duration
	// Memory keeps NATS streams in memory instead of on disk
	// (storage=memory).
	Memory bool
}

// Defaults of Settings: JetStream's own ack wait and duplicate window.
const (
	DefaultAckWait    = 30 * time.Second
	DefaultDuplicates = 2 * time.Minute
)

// Kinds of broker.
const (
	KindNATS  = "nats"
	KindRedis = "redis"
)

// ParseURL reads a broker URL: nats://HOST:PORT or redis://HOST:PORT[/DB],
// with the query parameters of Settings. It returns the kind, the URL
// without those parameters, and the settings.
func ParseURL(raw string) (kind, address string, s Settings, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", s, fmt.Errorf("queue URL %q: want nats://HOST:PORT or redis://HOST:PORT", raw)
	}
	switch u.Scheme {
	case "nats", "tls":
		kind = KindNATS
	case "redis", "rediss":
		kind = KindRedis
	default:
		return "", "", s, fmt.Errorf("queue URL %q: scheme %q: want nats:// or redis://", raw, u.Scheme)
	}
	s = Settings{AckWait: DefaultAckWait, Duplicates: DefaultDuplicates}
	q := u.Query()
	for key, dst := range map[string]*time.Duration{"ack_wait": &s.AckWait, "duplicates": &s.Duplicates} {
		if v := q.Get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return "", "", s, fmt.Errorf("queue URL %q: %s=%q: want a positive duration such as 30s", raw, key, v)
			}
			*dst = d
		}
		q.Del(key)
	}
	switch v := q.Get("storage"); v {
	case "", "file":
	case "memory":
		s.Memory = true
	default:
		return "", "", s, fmt.Errorf("queue URL %q: storage=%q: want file or memory", raw, v)
	}
	q.Del("storage")
	u.RawQuery = q.Encode()
	return kind, u.String(), s, nil
}

// Open connects to the broker at a URL ParseURL reads; name identifies
// this consumer to the broker (a Redis consumer name), unique per process.
func Open(ctx context.Context, raw, name string) (Broker, error) {
	kind, address, s, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if kind == KindNATS {
		return OpenNATS(ctx, address, s)
	}
	return OpenRedis(ctx, address, name, s)
}

// ValidModel reports why a model name cannot name a stream ("" when it
// can): NATS subject tokens and consumer names exclude '.', '*', '>' and
// white space.
func ValidModel(name string) error {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n:") {
		return fmt.Errorf("model %q cannot name a queue subject: no '.', ':', '*', '>' or spaces", name)
	}
	return nil
}
