package server

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/queueapi"
	"github.com/infer-serving/infer/pkg/runner"
)

// A request whose Infer-Reply-To can take no answer is dead-lettered with
// the reason and acknowledged, on both brokers: a NATS address that is not
// a subject one can publish to (white space, a wildcard, an empty token)
// was redelivered for good, or its answer silently dropped; an address
// naming a requests subject or stream had its answer queued as a request.
// Nothing is answered into the requests, which end empty.
func TestReplyToThatCannotTakeAnAnswerIsDeadLettered(t *testing.T) {
	s, _ := start(t, nil, Options{})
	m, _ := s.Repository().Model("mlp", 0)
	body, _, err := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(m.Metadata().Inputs, 1, true)}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type bad struct{ id, to, why string }
	check := func(t *testing.T, url string, cases []bad, pending func() int) {
		t.Helper()
		for _, c := range cases {
			eventually(t, "request "+c.id+" dead-lettered with the reason", func() bool {
				for _, d := range deadLetters(t, url, "mlp") {
					if d[queue.HeaderRequestID] == c.id && strings.Contains(d[queue.HeaderError], c.why) {
						return true
					}
				}
				return false
			})
		}
		eventually(t, "the requests acknowledged, none answered into them", func() bool { return pending() == 0 })
		if n := len(deadLetters(t, url, "mlp")); n != len(cases) {
			t.Fatalf("%d dead letters, want %d", n, len(cases))
		}
		client := dialQueue(t, url)
		r, err := client.Send(ctx, "mlp", map[string]string{queue.HeaderRequestID: "after"}, body)
		if err != nil || r.Status != 200 {
			t.Fatalf("a request after them: %v %d %s", err, r.Status, r.Body)
		}
	}

	t.Run("nats", func(t *testing.T) {
		url := brokers[0].start(t)
		serveQueue(t, s, url, queueapi.Options{})
		_, address, _, _ := queue.ParseURL(url)
		js := jetStream(t, address)
		cases := []bad{
			{"spaces", "reply here please", "is not a subject an answer can be published to"},
			{"wildcard", "replies.*", "is not a subject an answer can be published to"},
			{"empty-token", "replies..x", "is not a subject an answer can be published to"},
			{"loop", queue.RequestsPrefix + "mlp", "is a requests subject"},
		}
		for _, c := range cases {
			msg := nats.NewMsg(queue.RequestsPrefix + "mlp")
			msg.Data = body
			msg.Header.Set(queue.HeaderRequestID, c.id)
			msg.Header.Set(queue.HeaderReplyTo, c.to)
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		check(t, url, cases, func() int {
			st, err := js.Stream(ctx, queue.StreamRequests)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return int(info.State.Msgs)
		})
	})
	t.Run("redis", func(t *testing.T) {
		url := brokers[1].start(t)
		serveQueue(t, s, url, queueapi.Options{})
		_, address, _, _ := queue.ParseURL(url)
		rdb := redisClient(t, address)
		stream := strings.ReplaceAll(queue.RequestsPrefix+"mlp", ".", ":")
		cases := []bad{{"loop", stream, "is a requests stream"}}
		for _, c := range cases {
			if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{queue.HeaderRequestID, c.id, queue.HeaderReplyTo, c.to, "body", body}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		check(t, url, cases, func() int {
			p, err := rdb.XPending(ctx, stream, queue.Group).Result()
			if err != nil {
				return -1
			}
			n, _ := rdb.XLen(ctx, stream).Result() // an acknowledged request is deleted
			return int(p.Count) + int(n)
		})
	})
}
