package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/tensor"
)

// kill -9 of `infer serve` in the middle of a stream of requests, then a
// restart: every request gets exactly one result, none is lost.
func TestQueueSurvivesKill9(t *testing.T) {
	const requests = 10_000
	broker, err := queue.StartEmbedded(queue.EmbeddedOptions{Host: "127.0.0.1", Port: -1, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Shutdown()
	url := broker.URL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Every request in flight at once: a pending bound below it stalls a
	// publisher the machine is slow to acknowledge.
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*requests))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := queue.OpenNATS(ctx, url, queue.Settings{Duplicates: 10 * time.Minute}) // the streams, as the server makes them
	if err != nil {
		t.Fatal(err)
	}
	b.Close()

	body, _, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range requests {
		msg := nats.NewMsg(queue.RequestsPrefix + "mlp")
		msg.Data = body
		msg.Header.Set(queue.HeaderRequestID, "q-"+strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID("q-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("requests not stored within the test's budget")
	}
	results, err := js.Stream(ctx, queue.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := results.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	serve := func() (*osexec.Cmd, *bytes.Buffer) {
		port := freePorts(t, 1)[0]
		return inferProcess(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/v2/health/ready", 60*time.Second,
			"serve", "--host", "127.0.0.1", "--http-port", strconv.Itoa(port), "--grpc-port", "0", "--metrics-port", "0", "--admin-port", "0",
			"--queue", url+"?ack_wait=2s&duplicates=10m")
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
	seen := map[string]int{}
	cons, err := results.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for len(seen) < requests && ctx.Err() == nil {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if s := m.Headers().Get(queue.HeaderStatus); s != "200" {
				t.Fatalf("result %s: status %s: %s", m.Headers().Get(queue.HeaderRequestID), s, m.Data())
			}
			seen[m.Headers().Get(queue.HeaderRequestID)]++
		}
	}
	if n := stored(); n != requests {
		t.Errorf("%d results stored for %d requests", n, requests)
	}
	for i := range requests {
		if id := "q-" + strconv.Itoa(i); seen[id] != 1 {
			t.Fatalf("request %s has %d results (of %d ids, %d answered before the kill)", id, seen[id], len(seen), before)
		}
	}
	t.Logf("%d answered before kill -9, the rest after the restart; each request once", before)
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
