// Command overload measures how infer serve holds up past its capacity:
// how fast it sheds, how much it still answers, whether another model
// stays fast, what connections cost, and whether a drain cuts requests.
// scripts/overload.sh starts the servers and runs it; each -run is one
// scenario, and prints one JSON line of figures.
//
//	overload -run capacity -http ADDR                  closed loop, 64 connections
//	overload -run flood -http ADDR -rate R [-probe M]  open loop at R req/s, a probe at 100/s
//	overload -run conns -http ADDR -metrics ADDR -pid P -n N
//	overload -run idle -http ADDR -metrics ADDR -n N
//	overload -run drain -http ADDR -pid P -rate R      SIGTERM mid-run
//
// It sends to loopback only, bounded in count and time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/infer-serving/infer/pkg/loadgen"
)

type config struct {
	run, http, metrics string
	model, probe       string
	rate               float64
	conns, n, pid      int
	duration           time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.run, "run", "", "scenario: capacity, flood, conns, idle or drain")
	flag.StringVar(&c.http, "http", "", "the server's HTTP address, host:port")
	flag.StringVar(&c.metrics, "metrics", "", "the server's metrics address, host:port")
	flag.StringVar(&c.model, "model", "mlp", "the model to load")
	flag.StringVar(&c.probe, "probe", "", "flood: a bystander model probed at 100 req/s (empty: none)")
	flag.Float64Var(&c.rate, "rate", 0, "flood, drain: the open-loop rate, requests/s")
	flag.IntVar(&c.conns, "conns", 256, "flood, drain: the generator's connections")
	flag.IntVar(&c.n, "n", 16000, "conns, idle: connections to open")
	flag.IntVar(&c.pid, "pid", 0, "conns, drain: the server's process")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long a load runs")
	flag.Parse()
	if err := loopback(c.http); err != nil {
		fail(err)
	}
	ctx := context.Background()
	var out any
	var err error
	switch c.run {
	case "capacity":
		out, err = capacity(ctx, c)
	case "flood":
		out, err = flood(ctx, c)
	case "conns":
		out, err = connections(ctx, c, true)
	case "idle":
		out, err = connections(ctx, c, false)
	case "probe":
		out, err = probe(ctx, c)
	case "drain":
		out, err = drain(ctx, c)
	default:
		err = fmt.Errorf("-run %q: want capacity, flood, conns, idle or drain", c.run)
	}
	if err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "overload:", err)
	os.Exit(1)
}

// loopback refuses any address but a loopback one.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-http %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-http %q: overload sends only to loopback", addr)
	}
	return nil
}

// target returns a binary-extension target for model over conns
// connections.
func target(ctx context.Context, c config, model string, conns int) (*byStatus, func(), error) {
	t, _, closeT, err := loadgen.NewV2Target(ctx, loadgen.V2Options{URL: "http://" + c.http, Protocol: loadgen.ProtoHTTPBinary, Model: model, Conns: conns})
	if err != nil {
		return nil, nil, err
	}
	return newByStatus(t), closeT, nil
}

// capacity finds C: mlp's answered requests per second, closed loop, 64
// connections.
func capacity(ctx context.Context, c config) (any, error) {
	t, closeT, err := target(ctx, c, c.model, 64)
	if err != nil {
		return nil, err
	}
	defer closeT()
	warm(ctx, t.t, 64)
	sum, err := loadgen.Run(ctx, t, loadgen.Options{Concurrency: 64, Duration: c.duration})
	if err != nil {
		return nil, err
	}
	f := t.figures(sum.Window)
	return map[string]any{"scenario": "capacity", "model": c.model, "ok_per_s": f.OKRate, "ok_p50_ms": f.OK.P50, "ok_p99_ms": f.OK.P99, "errors": f.Other}, nil
}

// probe sends c.probe 100 requests a second, open loop, for c.duration:
// the bystander of a flood, in a process of its own as a real client is.
func probe(ctx context.Context, c config) (any, error) {
	p, closeP, err := target(ctx, c, c.probe, 4)
	if err != nil {
		return nil, err
	}
	defer closeP()
	sum, err := loadgen.Run(ctx, p, loadgen.Options{Schedule: loadgen.Constant{QPS: 100}, Duration: c.duration})
	if err != nil {
		return nil, err
	}
	f := p.figures(sum.Window)
	return map[string]any{"scenario": "probe", "model": c.probe, "ok": f.OK.Count, "p50_ms": f.OK.P50, "p99_ms": f.OK.P99,
		"server_p50_ms": f.Server.P50, "server_p99_ms": f.Server.P99, "shed": f.Shed.Count, "errors": f.Other}, nil
}

// flood runs mlp open loop at c.rate while a probe sends 100 req/s to
// another model; the probe also runs alone first, for its unloaded p99.
func flood(ctx context.Context, c config) (any, error) {
	out := map[string]any{"scenario": "flood", "model": c.model, "rate": c.rate}
	var probe *byStatus
	if c.probe != "" {
		p, closeP, err := target(ctx, c, c.probe, 4)
		if err != nil {
			return nil, err
		}
		defer closeP()
		warm(ctx, p.t, 4)
		sum, err := loadgen.Run(ctx, p, loadgen.Options{Schedule: loadgen.Constant{QPS: 100}, Duration: c.duration})
		if err != nil {
			return nil, err
		}
		alone := p.figures(sum.Window)
		out["probe"], out["probe_alone_p50_ms"], out["probe_alone_p99_ms"] = c.probe, alone.OK.P50, alone.OK.P99
		probe = newByStatus(p.t)
	}
	t, closeT, err := target(ctx, c, c.model, c.conns)
	if err != nil {
		return nil, err
	}
	defer closeT()
	probed := make(chan *loadgen.Summary, 1)
	if probe != nil {
		go func() {
			time.Sleep(time.Second) // the flood's warm-up
			sum, _ := loadgen.Run(ctx, probe, loadgen.Options{Schedule: loadgen.Constant{QPS: 100}, Duration: c.duration - time.Second})
			probed <- sum
		}()
	}
	sum, err := loadgen.Run(ctx, t, loadgen.Options{Schedule: loadgen.Constant{QPS: c.rate}, Concurrency: c.conns, Duration: c.duration, Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	f := t.figures(sum.Window)
	out["sent_per_s"], out["ok_per_s"], out["shed_per_s"], out["unsent"] = f.SentRate, f.OKRate, f.ShedRate, sum.Unsent
	out["ok_p50_ms"], out["ok_p99_ms"] = f.OK.P50, f.OK.P99
	out["shed_p50_ms"], out["shed_p99_ms"], out["other_errors"] = f.Shed.P50, f.Shed.P99, f.Other
	if probe != nil {
		ps := <-probed
		pf := probe.figures(ps.Window)
		out["probe_p50_ms"], out["probe_p99_ms"], out["probe_ok_per_s"], out["probe_errors"] = pf.OK.P50, pf.OK.P99, pf.OKRate, pf.Other
		out["probe_shed"] = pf.Shed.Count
	}
	return out, nil
}

// warm runs t closed loop for a moment, unrecorded.
func warm(ctx context.Context, t loadgen.Target, conns int) {
	_, _ = loadgen.Run(ctx, t, loadgen.Options{Concurrency: conns, Duration: 2 * time.Second})
}
