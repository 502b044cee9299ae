package server

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/queue/queuetest"
	"github.com/infer-serving/infer/pkg/queueapi"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// brokers are the real brokers the queue tests run against: NATS
// JetStream in this process, and redis-server.
var brokers = []struct {
	name  string
	start func(t *testing.T) string
}{
	{"nats", func(t *testing.T) string { _, url := queuetest.NATS(t, ""); return url }},
	{"redis", func(t *testing.T) string { return queuetest.Redis(t) }},
}

// serveQueue consumes the broker at url into s until the test ends.
func serveQueue(t *testing.T, s *Server, url string, opts queueapi.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := queue.Open(ctx, url, "test")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeQueue(ctx, b, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeQueue: %v", err)
		}
		b.Close()
	})
}

func dialQueue(t *testing.T, url string) queue.Client {
	t.Helper()
	c, err := queue.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A request through the queue gets the answer HTTP gives, byte for byte
// and with the same status, for JSON and binary bodies and for errors;
// its Server-Timing adds the time it spent in the broker.
func TestQueueAnswersAsHTTPDoes(t *testing.T) {
	s, hs := start(t, nil, Options{})
	m, err := s.Repository().Model("mlp", 0)
	if err != nil {
		t.Fatal(err)
	}
	image := runner.SyntheticInputs(m.Metadata().Inputs, 2, true)
	cases := []struct {
		name, version string
		req           protocol.InferRequest
		binary        bool
	}{
		{"json", "", protocol.InferRequest{ID: "a", Inputs: image}, false},
		{"binary", "1", protocol.InferRequest{ID: "b", Inputs: image, BinaryOutput: true}, true},
		{"version not loaded", "9", protocol.InferRequest{ID: "c", Inputs: image}, false},
		{"wrong shape", "", protocol.InferRequest{ID: "d", Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 3}, []float32{1, 2, 3})}}, false},
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			serveQueue(t, s, url, queueapi.Options{})
			client := dialQueue(t, url)
			for _, tc := range cases {
				body, hl, err := tc.req.Encode(tc.binary)
				if err != nil {
					t.Fatal(err)
				}
				path := "mlp"
				header := map[string]string{queue.HeaderRequestID: b.name + "-" + tc.req.ID}
				httpHeader := map[string]string{}
				if tc.version != "" {
					path += "/versions/" + tc.version
					header[queue.HeaderVersion] = tc.version
				}
				if hl >= 0 {
					header[protocol.HeaderContentLength] = strconv.FormatInt(hl, 10)
					httpHeader[protocol.HeaderContentLength] = strconv.FormatInt(hl, 10)
				}
				hr := call(t, "POST", hs.URL+"/v2/models/"+path+"/infer", body, httpHeader)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				qr, err := client.Send(ctx, "mlp", header, body)
				cancel()
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if qr.Status != hr.status || !bytes.Equal(qr.Body, hr.body) {
					t.Errorf("%s: queue %d %q\nHTTP %d %q", tc.name, qr.Status, qr.Body, hr.status, hr.body)
				}
				if got, want := qr.Header[protocol.HeaderContentLength], hr.header.Get(protocol.HeaderContentLength); got != want {
					t.Errorf("%s: %s %q over the queue, %q over HTTP", tc.name, protocol.HeaderContentLength, got, want)
				}
				if qr.Status == 200 {
					timing, _ := profile.ParseServerTiming(qr.Header[queue.HeaderServerTiming])
					if !strings.HasPrefix(qr.Header[queue.HeaderServerTiming], "broker;dur=") || timing.Get(profile.Infer) <= 0 {
						t.Errorf("%s: Server-Timing %q: want the broker phase and the server's", tc.name, qr.Header[queue.HeaderServerTiming])
					}
				}
			}
			if got := scrape(t, s); !strings.Contains(got, `infer_queue_messages_total{broker="`+b.name+`",model="mlp",outcome="answered"} 4`) ||
				!strings.Contains(got, `infer_queue_consumer_lag{broker="`+b.name+`",model="mlp"} 0`) {
				t.Errorf("queue metrics:\n%s", grepLines(got, "infer_queue_"))
			}
		})
	}
}

// A request the model fails every time is delivered MaxAttempts times,
// then stored in the dead-letter stream with its error, and its client
// answered with that error; a request sent twice with one id is answered
// once.
func TestQueuePoisonAndDuplicates(t *testing.T) {
	s, _ := start(t, nil, Options{AllowFaultInjection: true})
	if err := s.SetFault("fixed-shape", 1, &Fault{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := s.Repository().Model("mlp", 0)
	if err != nil {
		t.Fatal(err)
	}
	good, _, _ := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(m.Metadata().Inputs, 1, true)}).Encode(false)
	poison, _, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("matrix", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})}}).Encode(false)
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			serveQueue(t, s, url, queueapi.Options{MaxAttempts: 3, Backoff: 10 * time.Millisecond})
			client := dialQueue(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := client.Send(ctx, "fixed-shape", map[string]string{queue.HeaderRequestID: "poison-1"}, poison)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != 500 || !strings.Contains(string(r.Body), "injected fault") {
				t.Fatalf("poison answered %d %s", r.Status, r.Body)
			}
			dead := deadLetters(t, url, "fixed-shape")
			if len(dead) != 1 || dead[0][queue.HeaderAttempts] != "3" || !strings.Contains(dead[0][queue.HeaderError], "injected fault") ||
				dead[0][queue.HeaderRequestID] != "poison-1" {
				t.Fatalf("dead letters %v", dead)
			}

			// Twice the same id, with no reply address: one result in the
			// results stream.
			for range 2 {
				publishRaw(t, url, "mlp", "twice", good)
			}
			waitDrained(t, url, "mlp")
			if n := len(results(t, url, "mlp")); n != 1 {
				t.Fatalf("%d results for one request sent twice", n)
			}
		})
	}
}

// waitDrained waits until no request for model is left unacknowledged.
func waitDrained(t *testing.T, url, model string) {
	t.Helper()
	b, err := queue.Open(context.Background(), url, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := b.Consumer(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bl, err := c.Backlog(context.Background())
		if err == nil && bl.Lag == 0 && bl.Oldest.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: requests still waiting after 30s: %+v, %v", model, bl, err)
		}
	}
}

// publishRaw publishes a request with no reply address, so that its
// result goes to the model's results stream.
func publishRaw(t *testing.T, url, model, id string, body []byte) {
	t.Helper()
	kind, address, _, _ := queue.ParseURL(url)
	if kind == queue.KindNATS {
		js := jetStream(t, address)
		msg := nats.NewMsg(queue.RequestsPrefix + model)
		msg.Data = body
		msg.Header.Set(queue.HeaderRequestID, id)
		if _, err := js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		return
	}
	rdb := redisClient(t, address)
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "infer:requests:" + model,
		Values: []any{queue.HeaderRequestID, id, queue.BodyField, body}}).Err(); err != nil {
		t.Fatal(err)
	}
}

// jetStream connects to the NATS server at address until the test ends.
func jetStream(t *testing.T, address string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func redisClient(t *testing.T, address string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(address)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// results and deadLetters read a model's results or dead-letter stream:
// each entry's headers.
func results(t *testing.T, url, model string) []map[string]string {
	return streamEntries(t, url, queue.ResultsPrefix+model)
}

func deadLetters(t *testing.T, url, model string) []map[string]string {
	return streamEntries(t, url, queue.DeadPrefix+model)
}

func streamEntries(t *testing.T, url, subject string) []map[string]string {
	t.Helper()
	kind, address, _, _ := queue.ParseURL(url)
	var out []map[string]string
	if kind == queue.KindNATS {
		js := jetStream(t, address)
		name := queue.StreamResults
		if strings.HasPrefix(subject, queue.DeadPrefix) {
			name = queue.StreamDead
		}
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); ; seq++ {
			m, err := st.GetMsg(context.Background(), seq, jetstream.WithGetMsgSubject(subject))
			if err != nil {
				return out
			}
			h := map[string]string{}
			for k := range m.Header {
				h[k] = m.Header.Get(k)
			}
			out = append(out, h)
			seq = m.Sequence
		}
	}
	entries, err := redisClient(t, address).XRange(context.Background(), strings.ReplaceAll(subject, ".", ":"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		h := map[string]string{}
		for k, v := range e.Values {
			h[k], _ = v.(string)
		}
		out = append(out, h)
	}
	return out
}

// A queued body over the server's MaxBodyBytes is answered 413 without
// being decoded, as HTTP answers it, and the consumer goes on answering
// the requests after it.
func TestQueueAnswersABodyOverTheLimit413(t *testing.T) {
	s, _ := start(t, nil, Options{MaxBodyBytes: 1024})
	big, _ := s.Repository().Model("mlp", 0)
	small, _ := s.Repository().Model("fixed-shape", 0)
	bigBody, _, err := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(big.Metadata().Inputs, 1, true)}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	smallBody, _, err := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(small.Metadata().Inputs, 1, *small.Config().MaxBatchSize > 0)}).Encode(false)
	if err != nil || len(smallBody) > 1024 || len(bigBody) <= 1024 {
		t.Fatalf("bodies of %d and %d bytes (%v): want one over 1024 and one within", len(bigBody), len(smallBody), err)
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			serveQueue(t, s, url, queueapi.Options{})
			client := dialQueue(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := client.Send(ctx, "mlp", map[string]string{queue.HeaderRequestID: b.name + "-big"}, bigBody)
			if err != nil || r.Status != 413 || !strings.Contains(string(r.Body), "over the server's 1024") {
				t.Fatalf("a body over the limit: %v %d %s, want 413 naming the limit", err, r.Status, r.Body)
			}
			r, err = client.Send(ctx, "fixed-shape", map[string]string{queue.HeaderRequestID: b.name + "-small"}, smallBody)
			if err != nil || r.Status != 200 {
				t.Fatalf("a body within the limit after: %v %d %s", err, r.Status, r.Body)
			}
		})
	}
}

// A Redis request whose Infer-Reply-To names a key holding no stream is
// dead-lettered with the reason and acknowledged: the answer could never
// be published there, and it was once retried until taken for a
// duplicate of itself and lost.
func TestRedisReplyToANonStreamIsDeadLettered(t *testing.T) {
	s, _ := start(t, nil, Options{})
	url := queuetest.Redis(t)
	serveQueue(t, s, url, queueapi.Options{})
	_, address, _, _ := queue.ParseURL(url)
	rdb := redisClient(t, address)
	ctx := context.Background()
	if err := rdb.Set(ctx, "not-a-stream", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Repository().Model("mlp", 0)
	body, _, err := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(m.Metadata().Inputs, 1, true)}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	stream := strings.ReplaceAll(queue.RequestsPrefix+"mlp", ".", ":")
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{queue.HeaderRequestID, "lost?", queue.HeaderReplyTo, "not-a-stream", "body", body}}).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the request dead-lettered with the reason", func() bool {
		for _, d := range deadLetters(t, url, "mlp") {
			if d[queue.HeaderRequestID] == "lost?" && strings.Contains(d[queue.HeaderError], `"not-a-stream" holds a string, not a stream`) {
				return true
			}
		}
		return false
	})
	eventually(t, "the request acknowledged", func() bool {
		p, err := rdb.XPending(ctx, stream, queue.Group).Result()
		return err == nil && p.Count == 0
	})
}
