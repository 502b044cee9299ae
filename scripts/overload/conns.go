package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// mlpRequest is one JSON infer request for mlp, with its head.
var mlpRequest = func() []byte {
	var b strings.Builder
	b.WriteString(`{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[`)
	for i := range 784 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("0.5")
	}
	b.WriteString(`]}]}`)
	return []byte(fmt.Sprintf("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", b.Len(), b.String()))
}()

// connections opens c.n connections to the HTTP port (64 dials at a
// time), sends one mlp request on each when withRequest (else nothing),
// holds them, and reads the server's memory, goroutines and connections,
// and how fast its metrics port and a fresh inference answer meanwhile.
func connections(ctx context.Context, c config, withRequest bool) (any, error) {
	var mu sync.Mutex
	var conns []net.Conn
	var opened, answered, refused, closed atomic.Int64
	dials := make(chan struct{}, 64)
	var wg sync.WaitGroup
	start := time.Now()
	for range c.n {
		dials <- struct{}{}
		wg.Go(func() {
			defer func() { <-dials }()
			conn, err := net.DialTimeout("tcp", c.http, 5*time.Second)
			if err != nil {
				refused.Add(1)
				return
			}
			opened.Add(1)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			if !withRequest {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := conn.Write(mlpRequest); err != nil {
				closed.Add(1)
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				closed.Add(1) // closed at accept, past the limit
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	opening := time.Since(start)
	time.Sleep(2 * time.Second) // let the server settle
	out := map[string]any{"scenario": map[bool]string{true: "conns", false: "idle"}[withRequest], "connections": c.n,
		"opened": opened.Load(), "refused_at_dial": refused.Load(), "answered": answered.Load(), "closed_by_server": closed.Load(),
		"opening_s": opening.Seconds()}
	if c.pid > 0 {
		rss, hwm := memory(c.pid)
		out["rss_mib"], out["hwm_mib"] = rss>>20, hwm>>20
	}
	// The metrics port, scraped 20 times, and a fresh inference
	// connection, 20 times, while the connections are held.
	var worst, inferWorst time.Duration
	var scraped, inferred int
	for range 20 {
		t0 := time.Now()
		figs, err := scrape(c.metrics)
		if d := time.Since(t0); err == nil {
			scraped++
			worst = max(worst, d)
			out["goroutines"], out["connections_open"], out["connections_rejected"] = figs["go_goroutines"], figs[`infer_connections_open{listener="inference"}`], figs[`infer_connections_rejected_total{listener="inference"}`]
		}
		t0 = time.Now()
		if status, err := inferOnce(c.http); err == nil && status == http.StatusOK {
			inferred++
			inferWorst = max(inferWorst, time.Since(t0))
		}
		time.Sleep(50 * time.Millisecond)
	}
	out["metrics_answered"], out["metrics_worst_ms"] = fmt.Sprintf("%d/20", scraped), float64(worst.Microseconds())/1000
	out["fresh_infer_answered"], out["fresh_infer_worst_ms"] = fmt.Sprintf("%d/20", inferred), float64(inferWorst.Microseconds())/1000
	for _, conn := range conns {
		conn.Close()
	}
	return out, nil
}

// scrape reads the metrics port's samples without labels or with the
// labels named in the keys used here.
func scrape(addr string) (map[string]float64, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && !strings.HasPrefix(name, "#") {
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, nil
}

// inferOnce sends one mlp request on a connection of its own.
func inferOnce(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(mlpRequest); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// memory reads a process's VmRSS and VmHWM, in bytes.
func memory(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = kb << 10
			case "VmHWM:":
				hwm = kb << 10
			}
		}
	}
	return rss, hwm
}

// drain runs mlp open loop at c.rate, sends the server SIGTERM a third of
// the way in, and counts what became of the requests: answered, shed,
// refused or reset while connecting (the port closed: never accepted, not
// cut) and cut
// (written to an accepted connection and never answered, or sent again
// by the client because its kept connection was closed under it).
func drain(ctx context.Context, c config) (any, error) {
	t, closeT, err := target(ctx, c, c.model, c.conns)
	if err != nil {
		return nil, err
	}
	defer closeT()
	go func() {
		time.Sleep(c.duration / 3)
		_ = syscall.Kill(c.pid, syscall.SIGTERM)
	}()
	sum, err := loadgen.Run(ctx, t, loadgen.Options{Schedule: loadgen.Constant{QPS: c.rate}, Concurrency: c.conns, Duration: c.duration, Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	f := t.figures(sum.Window)
	refusedN := f.Other[kindNotConnected]
	var cut int64
	for kind, n := range f.Other {
		if kind != kindNotConnected {
			cut += n
		}
	}
	return map[string]any{"scenario": "drain", "rate": c.rate, "answered": f.OK.Count, "shed": f.Shed.Count,
		"refused_at_connect": refusedN, "cut": cut + f.Retried, "cut_kinds": f.Other, "cut_said": f.Said, "resent_after_close": f.Retried}, nil
}
