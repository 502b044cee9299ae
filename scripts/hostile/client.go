package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// clientFigures is what the normal client reports: its latencies, in
// nanoseconds, unloaded and under attack, and its errors.
type clientFigures struct {
	Base, Loaded             []time.Duration
	BaseErrors, LoadedErrors int
}

// normalClient measures mlp unloaded for c.baseline, creates c.ready,
// measures until SIGTERM, and prints the figures as JSON. In its own
// process, as a real client is, it is not slowed by the attackers'
// goroutines; the script runs the attackers at a lower priority.
func normalClient(c config) int {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	base := measure(context.Background(), client, c.http, c.baseline)
	if c.ready != "" {
		if err := os.WriteFile(c.ready, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "hostile -client:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	loaded := measure(ctx, client, c.http, 10*time.Minute)
	if err := json.NewEncoder(os.Stdout).Encode(clientFigures{base.lat, loaded.lat, base.errors, loaded.errors}); err != nil {
		fmt.Fprintln(os.Stderr, "hostile -client:", err)
		return 1
	}
	return 0
}

// stopClient ends the normal client and reads its figures.
func stopClient(c config) (base, loaded latencies, err error) {
	if err := syscall.Kill(c.clientPID, syscall.SIGTERM); err != nil {
		return base, loaded, fmt.Errorf("stop the normal client: %w", err)
	}
	var f clientFigures
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(c.clientOut)
		if err == nil && json.Unmarshal(data, &f) == nil {
			return latencies{f.Base, f.BaseErrors}, latencies{f.Loaded, f.LoadedErrors}, nil
		}
	}
	return base, loaded, fmt.Errorf("no figures in %s", c.clientOut)
}
