package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	osexec "os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/queue/queuetest"
	"github.com/infer-serving/infer/pkg/tensor"
)

// killBroker is a broker the kill -9 test runs against: its URL, how a
// request with no reply address is published, and the results stored.
type killBroker struct {
	url     string
	publish func(ctx context.Context, ids []string, body []byte) error
	// results returns each result's request id and status.
	results func(ctx context.Context) ([][2]string, error)
}

// kill -9 of `infer serve` in the middle of a stream of requests, then a
// restart: every request gets exactly one result, none is lost. On NATS
// (a server outside infer, its streams on disk) and on Redis.
func TestQueueSurvivesKill9(t *testing.T) {
	const requests = 10_000
	for _, b := range []struct {
		name  string
		start func(t *testing.T) killBroker
	}{{"nats", natsKillBroker}, {"redis", redisKillBroker}} {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			kb := b.start(t)
			body, _, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(false)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]string, requests)
			for i := range ids {
				ids[i] = "q-" + strconv.Itoa(i)
			}
			if err := kb.publish(ctx, ids, body); err != nil {
				t.Fatal(err)
			}
			stored := func() int {
				r, err := kb.results(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return len(r)
			}
			serve := func() (*osexec.Cmd, *bytes.Buffer) {
				port := freePorts(t, 1)[0]
				return inferProcess(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/v2/health/ready", 60*time.Second,
					"serve", "--host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--grpc-port", "0", "--metrics-port", "0", "--admin-port", "0",
					"--queue", kb.url+"?ack_wait=2s&duplicates=10m")
			}
			first, firstLogs := serve()
			for stored() < requests/5 {
				if ctx.Err() != nil {
					t.Fatalf("%d results before the kill, after the test's budget:\n%s", stored(), firstLogs.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			first.Wait()
			before := stored()
			if before >= requests {
				t.Fatalf("all %d answered before the kill: nothing to recover", before)
			}

			_, secondLogs := serve()
			for stored() < requests {
				if ctx.Err() != nil {
					t.Fatalf("%d results of %d (%d before the kill):\n%s", stored(), requests, before, secondLogs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Every id exactly once, each a success.
			results, err := kb.results(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, r := range results {
				if r[1] != "200" {
					t.Fatalf("result %s: status %s", r[0], r[1])
				}
				seen[r[0]]++
			}
			if len(results) != requests {
				t.Errorf("%d results stored for %d requests", len(results), requests)
			}
			for _, id := range ids {
				if seen[id] != 1 {
					t.Fatalf("request %s has %d results (of %d ids, %d answered before the kill)", id, seen[id], len(seen), before)
				}
			}
			t.Logf("%d answered before kill -9, the rest after the restart; each request once", before)
		})
	}
}

// natsKillBroker is a NATS server with JetStream, its streams on disk,
// outside the process killed.
func natsKillBroker(t *testing.T) killBroker {
	broker, err := queue.StartEmbedded(queue.EmbeddedOptions{Host: "127.0.0.1", Port: -1, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Shutdown)
	url := broker.URL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	b, err := queue.OpenNATS(context.Background(), url, queue.Settings{Duplicates: 10 * time.Minute}) // the streams, as the server makes them
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	return killBroker{url: url,
		publish: func(ctx context.Context, ids []string, body []byte) error {
			// In windows of 1,000 confirmations: a slow machine would
			// stall an unbounded stream of unconfirmed publications.
			for i, id := range ids {
				msg := nats.NewMsg(queue.RequestsPrefix + "mlp")
				msg.Data = body
				msg.Header.Set(queue.HeaderRequestID, id)
				if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id)); err != nil {
					return err
				}
				if (i+1)%1000 != 0 && i+1 != len(ids) {
					continue
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-ctx.Done():
					return errors.New("requests not stored within the test's budget")
				}
			}
			return nil
		},
		results: func(ctx context.Context) ([][2]string, error) {
			st, err := js.Stream(ctx, queue.StreamResults)
			if err != nil {
				return nil, err
			}
			info, err := st.Info(ctx)
			if err != nil {
				return nil, err
			}
			n := int(info.State.Msgs)
			out := make([][2]string, 0, n)
			cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
			if err != nil {
				return nil, err
			}
			for len(out) < n && ctx.Err() == nil {
				batch, err := cons.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(2*time.Second))
				if err != nil {
					return nil, err
				}
				for m := range batch.Messages() {
					out = append(out, [2]string{m.Headers().Get(queue.HeaderRequestID), m.Headers().Get(queue.HeaderStatus)})
				}
			}
			return out, ctx.Err()
		}}
}

// redisKillBroker is redis-server; results go to the model's results
// stream.
func redisKillBroker(t *testing.T) killBroker {
	url := queuetest.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return killBroker{url: url,
		publish: func(ctx context.Context, ids []string, body []byte) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, id := range ids {
					p.XAdd(ctx, &redis.XAddArgs{Stream: "infer:requests:mlp", Values: []any{queue.HeaderRequestID, id, queue.BodyField, body}})
				}
				return nil
			})
			return err
		},
		results: func(ctx context.Context) ([][2]string, error) {
			entries, err := rdb.XRange(ctx, "infer:results:mlp", "-", "+").Result()
			out := make([][2]string, 0, len(entries))
			for _, e := range entries {
				id, _ := e.Values[queue.HeaderRequestID].(string)
				status, _ := e.Values[queue.HeaderStatus].(string)
				out = append(out, [2]string{id, status})
			}
			return out, err
		}}
}

// infer bench --protocol nats through infer serve --queue embedded: every
// request answered, the broker phase reported, the budget adding up.
func TestBenchThroughTheEmbeddedQueue(t *testing.T) {
	natsPort := freePorts(t, 1)[0]
	httpAddr, _, stop, done := startServe(t, serveOptions{queueURL: "embedded", queuePort: natsPort, queueInflight: 64, queueMaxAttempts: 5})
	defer func() { stop(); <-done }()
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoNATS)
	o.queue = "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	o.model, o.requests, o.concurrency = "mlp", 300, 4
	var out bytes.Buffer
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.Requests != 300 || r.OK != 300 || r.ServerReported != 300 || r.Protocol != loadgen.ProtoNATS {
		t.Fatalf("report %+v", r)
	}
	var shares float64
	phase := map[string]loadgen.PhaseReport{}
	for _, p := range r.Phases {
		shares += p.Share
		phase[p.Phase] = p
	}
	if math.Abs(shares-1) > 1e-6 || phase["broker"].Mean <= 0 || phase["broker"].Source != loadgen.SourceServer || phase["infer"].Mean <= 0 {
		t.Fatalf("phases %+v (shares %v)", phase, shares)
	}

	// A queue URL of the other broker is refused with the fix.
	o.queue = "redis://127.0.0.1:1"
	if err := runBench(context.Background(), o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--protocol nats with a redis queue URL") {
		t.Fatalf("mismatched queue URL: %v", err)
	}
}
