// Command queueburst publishes a burst of mlp requests to a server's
// NATS JetStream queue as fast as the broker confirms them, waits until
// every request has its result, and follows the server's resident memory
// meanwhile. scripts/queue-bench.sh starts the server and runs it.
//
//	queueburst -nats nats://127.0.0.1:PORT -pid PID [-n 100000] [-bound-mib 256]
//
// Requests carry ids burst-000000 ... (the JetStream message id too), a
// [1,784] FP32 image of zeros in the binary extension, and one reply
// inbox. It prints one JSON line of figures and exits 1 when a request is
// unanswered or answered twice, a result is not a 200, or the peak VmRSS
// exceeds the idle VmRSS by more than -bound-mib. It sends to loopback
// only, bounded in count and time.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/infer-serving/infer/pkg/queue"
)

type config struct {
	nats, model string
	n, pid      int
	boundMiB    int64
	settle      time.Duration
	timeout     time.Duration
}

// figures are what one burst measured. Memory is in MiB.
type figures struct {
	Burst        int     `json:"burst"`
	BurstMiB     float64 `json:"burst_mib"`
	PublishS     float64 `json:"publish_s"`
	DrainS       float64 `json:"drain_s"`
	Results      int     `json:"results"`
	Answered     int     `json:"answered"`
	Unanswered   int     `json:"unanswered"`
	Duplicated   int     `json:"duplicated"`
	Non200       int     `json:"non_200"`
	IdleRSSMiB   float64 `json:"idle_rss_mib"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	GrowthMiB    float64 `json:"growth_mib"`
	HWMMiB       float64 `json:"vm_hwm_mib"`
	BoundMiB     int64   `json:"bound_mib"`
	RSSSamples   int     `json:"rss_samples"`
	ThroughputPS float64 `json:"throughput_per_s"`
}

func main() {
	var c config
	flag.StringVar(&c.nats, "nats", "", "the server's embedded NATS URL, nats://127.0.0.1:PORT")
	flag.StringVar(&c.model, "model", "mlp", "the model the requests are for (input image, FP32 [1,784])")
	flag.IntVar(&c.n, "n", 100000, "requests in the burst")
	flag.IntVar(&c.pid, "pid", 0, "the server's process, whose VmRSS is sampled every 100 ms")
	flag.Int64Var(&c.boundMiB, "bound-mib", 256, "most the server's VmRSS may grow over its idle VmRSS, MiB")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "how long to keep listening after the last result, for duplicates")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "how long the whole burst may take")
	flag.Parse()
	if c.n < 1 || c.pid < 1 || c.boundMiB < 1 {
		fail(fmt.Errorf("-n %d, -pid %d, -bound-mib %d: want 1 or more", c.n, c.pid, c.boundMiB))
	}
	if err := loopback(c.nats); err != nil {
		fail(err)
	}
	f, err := burst(c)
	if f != nil {
		out, _ := json.Marshal(f)
		fmt.Println(string(out))
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "queueburst:", err)
	os.Exit(1)
}

// loopback refuses a broker that is not on this machine.
func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "nats" {
		return fmt.Errorf("-nats %q: want nats://127.0.0.1:PORT", raw)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-nats %q: the burst goes to loopback only", raw)
	}
	return nil
}

// request is the body of one mlp request: the binary extension's JSON
// header, then 784 FP32 zeros; headerLen is the header's length.
func request() (body []byte, headerLen int) {
	const elems = 784
	header := fmt.Sprintf(`{"inputs":[{"name":"image","shape":[1,%d],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`, elems, 4*elems)
	body = make([]byte, len(header)+4*elems)
	copy(body, header)
	for i := range elems {
		binary.LittleEndian.PutUint32(body[len(header)+4*i:], math.Float32bits(0))
	}
	return body, len(header)
}

// tally counts results by request id.
type tally struct {
	mu      sync.Mutex
	by      map[string]int
	results int
	non200  int
	all     chan struct{} // closed when every id has a result
	want    int
}

func (t *tally) add(m *nats.Msg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := m.Header.Get(queue.HeaderRequestID)
	t.by[id]++
	t.results++
	if m.Header.Get(queue.HeaderStatus) != "200" {
		if t.non200 == 0 {
			fmt.Fprintf(os.Stderr, "queueburst: %s answered %s: %.200s\n", id, m.Header.Get(queue.HeaderStatus), m.Data)
		}
		t.non200++
	}
	if t.by[id] == 1 && len(t.by) == t.want {
		close(t.all)
	}
}

// rss samples a process's VmRSS every 100 ms until ctx ends.
type rss struct {
	mu      sync.Mutex
	peak    int64
	samples int
}

func (r *rss) follow(ctx context.Context, pid int) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, _ := memory(pid); v > 0 {
			r.mu.Lock()
			r.peak = max(r.peak, v)
			r.samples++
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func burst(c config) (*figures, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	// Idle: the server with its models loaded, before any request.
	var idle int64
	for range 10 {
		v, _ := memory(c.pid)
		idle = max(idle, v)
		time.Sleep(100 * time.Millisecond)
	}
	if idle == 0 {
		return nil, fmt.Errorf("-pid %d: no VmRSS in /proc/%d/status", c.pid, c.pid)
	}

	nc, err := nats.Connect(c.nats, nats.Name("queueburst"))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", c.nats, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	t := &tally{by: make(map[string]int, c.n), all: make(chan struct{}), want: c.n}
	inbox := nats.NewInbox()
	sub, err := nc.Subscribe(inbox, t.add)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	// A burst of results must not be dropped as a slow consumer's.
	if err := sub.SetPendingLimits(-1, 512<<20); err != nil {
		return nil, err
	}

	var mem rss
	follow, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); mem.follow(follow, c.pid) }()
	defer func() { stopFollow(); <-followed }()

	body, headerLen := request()
	start := time.Now()
	for i := range c.n {
		id := fmt.Sprintf("burst-%06d", i)
		msg := nats.NewMsg(queue.RequestsPrefix + c.model)
		msg.Data = body
		msg.Header.Set(queue.HeaderRequestID, id)
		msg.Header.Set(queue.HeaderReplyTo, inbox)
		msg.Header.Set("Inference-Header-Content-Length", strconv.Itoa(headerLen))
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(id)); err != nil {
			return nil, fmt.Errorf("publish %s: %w", id, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, fmt.Errorf("the broker confirmed %d of %d requests within %s", c.n-js.PublishAsyncPending(), c.n, c.timeout)
	}
	published := time.Since(start)

	var timedOut bool
	select {
	case <-t.all:
	case <-ctx.Done():
		timedOut = true
	}
	drained := time.Since(start)
	if !timedOut {
		// Redeliveries answered again would arrive now.
		select {
		case <-time.After(c.settle):
		case <-ctx.Done():
		}
	}
	stopFollow()
	<-followed

	_, hwm := memory(c.pid)
	t.mu.Lock()
	defer t.mu.Unlock()
	mem.mu.Lock()
	defer mem.mu.Unlock()
	f := &figures{
		Burst: c.n, BurstMiB: mib(int64(c.n * len(body))),
		PublishS: published.Seconds(), DrainS: drained.Seconds(),
		Results: t.results, Answered: len(t.by), Unanswered: c.n - len(t.by), Non200: t.non200,
		IdleRSSMiB: mib(idle), PeakRSSMiB: mib(mem.peak), GrowthMiB: mib(mem.peak - idle), HWMMiB: mib(hwm),
		BoundMiB: c.boundMiB, RSSSamples: mem.samples,
		ThroughputPS: float64(len(t.by)) / drained.Seconds(),
	}
	for _, k := range t.by {
		if k > 1 {
			f.Duplicated++
		}
	}
	var problems []string
	if f.Unanswered > 0 {
		problems = append(problems, fmt.Sprintf("%d requests unanswered after %s", f.Unanswered, c.timeout))
	}
	if f.Duplicated > 0 {
		problems = append(problems, fmt.Sprintf("%d requests answered more than once", f.Duplicated))
	}
	if f.Non200 > 0 {
		problems = append(problems, fmt.Sprintf("%d results not a 200", f.Non200))
	}
	if mem.peak-idle > c.boundMiB<<20 {
		problems = append(problems, fmt.Sprintf("peak VmRSS %.0f MiB is %.0f MiB over idle, past the %d MiB bound", f.PeakRSSMiB, f.GrowthMiB, c.boundMiB))
	}
	if len(problems) > 0 {
		return f, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return f, nil
}

func mib(b int64) float64 { return math.Round(float64(b)/(1<<20)*10) / 10 }

// memory reads a process's VmRSS and VmHWM from /proc/PID/status, in
// bytes; zeros when the process is gone.
func memory(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm
}
