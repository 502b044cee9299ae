// Command hostile is the attacking half of scripts/hostile.sh: against an
// infer server on loopback it sends what a hostile or broken client
// would, while a well-behaved client measures the latency of the mlp
// model and the server's memory and metric series are sampled. It prints
// the figures and exits 1 when a bound is broken. Every attack is bounded
// in count and time, and every connection goes to 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	http, metrics string // host:port, loopback only
	grpc          string // host:port, loopback only; empty: no gRPC attacks
	pid           int
	rssBound      int64 // bytes
	readTimeout   time.Duration
	idleConns     int
	names         int
	baseline      time.Duration
	decoder       bool
	// The normal client in its own process (-client), as a real one is:
	// clientPID and clientOut are how the attackers stop it and read its
	// figures; ready is the file it creates once its baseline is measured.
	client    bool
	clientPID int
	clientOut string
	ready     string
}

func main() {
	var c config
	flag.StringVar(&c.http, "http", "127.0.0.1:8000", "the server's HTTP address (loopback)")
	flag.StringVar(&c.grpc, "grpc", "", "the server's gRPC address (loopback); empty: no gRPC attacks")
	flag.StringVar(&c.metrics, "metrics", "127.0.0.1:8002", "the server's metrics address (loopback)")
	flag.IntVar(&c.pid, "pid", 0, "the server's process id, for /proc/PID/status")
	flag.Int64Var(&c.rssBound, "rss-bound", 1<<30, "most resident memory allowed, in bytes")
	flag.DurationVar(&c.readTimeout, "read-timeout", 10*time.Second, "the server's --read-timeout")
	flag.IntVar(&c.idleConns, "idle-conns", 10000, "idle connections to open")
	flag.IntVar(&c.names, "names", 3000, "made-up model names to ask for")
	flag.DurationVar(&c.baseline, "baseline", 5*time.Second, "how long to measure the unloaded latency")
	flag.BoolVar(&c.decoder, "decoder", true, "send the decoder's attacks too (enormous shapes, overflowing shapes, deep nesting)")
	flag.BoolVar(&c.client, "client", false, "be the normal client only: measure -baseline unloaded, create -ready, measure until SIGTERM, print the figures as JSON")
	flag.StringVar(&c.ready, "ready", "", "-client: the file to create once the baseline is measured")
	flag.IntVar(&c.clientPID, "client-pid", 0, "the normal client's process id (its own process: see -client); 0 measures in this process")
	flag.StringVar(&c.clientOut, "client-out", "", "the file the normal client prints its figures to")
	flag.Parse()
	if c.client {
		if host, _, err := net.SplitHostPort(c.http); err != nil || host != "127.0.0.1" {
			fmt.Fprintf(os.Stderr, "hostile: %q is not a 127.0.0.1 address\n", c.http)
			os.Exit(2)
		}
		os.Exit(normalClient(c))
	}
	for _, a := range []string{c.http, c.metrics, c.grpc} {
		if a == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" {
			fmt.Fprintf(os.Stderr, "hostile: %q is not a 127.0.0.1 address\n", a)
			os.Exit(2)
		}
	}
	if c.pid <= 0 {
		fmt.Fprintln(os.Stderr, "hostile: -pid is required")
		os.Exit(2)
	}
	if !run(c) {
		os.Exit(1)
	}
}

// report collects the figures and verdicts.
type report struct {
	mu     sync.Mutex
	lines  []string
	failed bool
}

func (r *report) add(ok bool, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	mark := "ok  "
	if !ok {
		mark, r.failed = "FAIL", true
	}
	r.lines = append(r.lines, mark+" "+fmt.Sprintf(format, args...))
}

func run(c config) bool {
	var rep report
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	rssStart, _ := memory(c.pid)
	fmt.Fprintf(os.Stderr, "hostile: measuring mlp's unloaded latency for %v\n", c.baseline)
	var base latencies
	if c.clientPID == 0 {
		base = measure(context.Background(), client, c.http, c.baseline)
	}
	// Counted after mlp's own series exist: what grows from here is the attacks'.
	seriesBefore, err := series(client, c.metrics)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return false
	}

	ctx, cancel := context.WithCancel(context.Background())
	var sampled sampler
	var wg sync.WaitGroup
	wg.Go(func() { sampled.run(ctx, c.pid) })
	loadedc := make(chan latencies, 1)
	measuring, stopMeasure := context.WithCancel(ctx)
	defer stopMeasure()
	if c.clientPID == 0 {
		wg.Go(func() { loadedc <- measure(measuring, client, c.http, 10*time.Minute) })
	}

	// The transport's attacks, all at once.
	var attacks sync.WaitGroup
	attacks.Go(func() { slowBodies(c, &rep) })
	attacks.Go(func() { announcedNoBody(c, &rep) })
	attacks.Go(func() { idleConnections(c, &rep) })
	attacks.Go(func() { madeUpNames(c, client, &rep) })
	attacks.Wait()
	// The decoder's attacks.
	if c.decoder {
		decoderAttacks(c, client, &rep)
	} else {
		rep.add(true, "decoder attacks not sent (-decoder=false)")
	}

	stopMeasure()
	var loaded latencies
	if c.clientPID == 0 {
		loaded = <-loadedc
	} else {
		var err error
		if base, loaded, err = stopClient(c); err != nil {
			rep.add(false, "normal client: %v", err)
		}
	}
	baseP99, loadedP99 := percentile(base.lat, 0.99), percentile(loaded.lat, 0.99)

	// gRPC's floods, one after the other, once the normal client has
	// stopped: their bound is memory. The 600 MiB the stalled calls push
	// through the server's core before the budget closes their connections
	// delay every other request while they arrive (the normal client's p99
	// read 10-13 ms against 4 ms unloaded when it measured them), a cost
	// of bandwidth that no bound on memory removes.
	if c.grpc != "" {
		stalledGRPC(c, &rep)
		tinyFramesGRPC(c, &rep)
	}
	cancel()
	wg.Wait()

	alive := alive(client, c.http)
	rep.add(alive, "server alive after the attacks (GET /v2/health/live)")
	rssEnd, hwm := memory(c.pid)
	rep.add(hwm <= c.rssBound && sampled.max.Load() <= c.rssBound, "resident memory: %s at the start, %s at most sampled, %s at the end; VmHWM %s (bound %s)",
		mib(rssStart), mib(sampled.max.Load()), mib(rssEnd), mib(hwm), mib(c.rssBound))
	if alive {
		seriesAfter, err := series(client, c.metrics)
		rep.add(err == nil && seriesAfter-seriesBefore < 100, "metric series: %d before, %d after (%d made-up names asked for; bound: under 100 more)", seriesBefore, seriesAfter, c.names)
	}
	rep.add(base.errors == 0, "normal client unloaded: %d requests, %d errors, p50 %v, p99 %v", len(base.lat), base.errors, percentile(base.lat, 0.5), baseP99)
	rep.add(loadedP99 <= 2*baseP99 && loaded.errors == 0, "normal client under attack: %d requests, %d errors, p50 %v, p99 %v (bound: 2 x %v = %v)",
		len(loaded.lat), loaded.errors, percentile(loaded.lat, 0.5), loadedP99, baseP99, 2*baseP99)

	fmt.Println("hostile.sh figures:")
	for _, l := range rep.lines {
		fmt.Println("  " + l)
	}
	return !rep.failed
}

// mlpBody is one JSON request for mlp: an image of 784 values.
var mlpBody = func() []byte {
	var b bytes.Buffer
	b.WriteString(`{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[`)
	for i := range 784 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%.3f", float64(i%255)/255)
	}
	b.WriteString(`]}]}`)
	return b.Bytes()
}()

type latencies struct {
	lat    []time.Duration
	errors int
}

// measure sends mlp requests one after another, from one client, for d or
// until ctx ends, at most 100 a second.
func measure(ctx context.Context, client *http.Client, addr string, d time.Duration) latencies {
	var out latencies
	end := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) && len(out.lat) < 100_000 {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		start := time.Now()
		resp, err := client.Post("http://"+addr+"/v2/models/mlp/infer", "application/json", bytes.NewReader(mlpBody))
		if err != nil {
			out.errors++
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out.errors++
			continue
		}
		out.lat = append(out.lat, time.Since(start))
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))].Round(10 * time.Microsecond)
}

// sampler keeps the largest resident memory it reads.
type sampler struct{ max atomic.Int64 }

func (s *sampler) run(ctx context.Context, pid int) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if rss, _ := memory(pid); rss > s.max.Load() {
			s.max.Store(rss)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memory reads VmRSS and VmHWM of pid, in bytes.
func memory(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// series counts the sample lines of the server's /metrics.
func series(client *http.Client, addr string) (int, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("reading the metrics: %w", err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n, sc.Err()
}

func alive(client *http.Client, addr string) bool {
	resp, err := client.Get("http://" + addr + "/v2/health/live")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// post sends body to path on a fresh connection and returns the status
// (0: no answer) and the start of the answer's body.
func post(addr, path string, body []byte, timeout time.Duration) (int, string) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err.Error()
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, addr, len(body))
	if _, err := conn.Write(body); err != nil {
		return 0, err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, string(b)
}
