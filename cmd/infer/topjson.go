package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/monitor"
)

// topSnapshot is one frame of `infer top -o json`, one JSON object a
// line: what the dashboard shows, for a program. Figures not known yet (a
// rate before the second scrape) are null; latencies are in seconds.
type topSnapshot struct {
	At            time.Time               `json:"at"`
	WindowSeconds float64                 `json:"window_seconds"`
	Models        []topModel              `json:"models"`
	Rollouts      map[string]deploy.State `json:"rollouts,omitempty"`
	// Errors and RolloutErrors hold, by server, why its metrics or its
	// rollouts could not be read this time.
	Errors        map[string]string `json:"errors,omitempty"`
	RolloutErrors map[string]string `json:"rollout_errors,omitempty"`
}

type topModel struct {
	Server            string             `json:"server"`
	Model             string             `json:"model"`
	Version           string             `json:"version"`
	Ready             bool               `json:"ready"`
	RequestsPerSecond *float64           `json:"requests_per_second"`
	ErrorRate         *float64           `json:"error_rate"`
	Errors            map[string]float64 `json:"errors,omitempty"`
	P50               *float64           `json:"p50_seconds"`
	P95               *float64           `json:"p95_seconds"`
	P99               *float64           `json:"p99_seconds"`
	MeanBatch         *float64           `json:"mean_batch"`
	CacheHitRate      *float64           `json:"cache_hit_rate"`
	CostPer1k         *float64           `json:"cost_per_1k_usd"`
	Queue             float64            `json:"queue"`
	OldestSeconds     float64            `json:"oldest_queued_seconds"`
	Inflight          float64            `json:"inflight"`
	// A text generator's: time to first token and between tokens, output
	// tokens per second, sequences running and waiting, key/value bytes.
	Generator       *topGenerator `json:"generator,omitempty"`
	LoadedBytes     int64         `json:"loaded_bytes,omitempty"`
	LastUsedSeconds *float64      `json:"idle_seconds,omitempty"`
}

type topGenerator struct {
	TTFTP50         *float64 `json:"ttft_p50_seconds"`
	TTFTP99         *float64 `json:"ttft_p99_seconds"`
	ITLP50          *float64 `json:"itl_p50_seconds"`
	TokensPerSecond *float64 `json:"tokens_per_second"`
	Running         float64  `json:"running"`
	Waiting         float64  `json:"waiting"`
	KVBytes         float64  `json:"kv_bytes"`
}

// runTopJSON polls every interval, after a first poll that starts the
// window, and prints each frame as one line of JSON, count of them (0:
// until ctx ends).
func runTopJSON(ctx context.Context, w io.Writer, poll func(context.Context) monitor.Frame, interval time.Duration, count int) error {
	poll(ctx)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	enc := json.NewEncoder(w)
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := enc.Encode(snapshot(poll(ctx))); err != nil {
			return err
		}
	}
	return nil
}

func snapshot(f monitor.Frame) topSnapshot {
	s := topSnapshot{At: f.At.UTC(), WindowSeconds: f.Window.Seconds(), Models: []topModel{}}
	for _, r := range f.Rows {
		m := topModel{Server: r.Key.Server, Model: r.Model, Version: r.Version, Ready: r.Ready,
			RequestsPerSecond: known(r.Rate), ErrorRate: known(r.ErrorRate), Errors: r.Errors,
			P50: known(r.P50), P95: known(r.P95), P99: known(r.P99), MeanBatch: known(r.MeanBatch),
			CacheHitRate: known(r.CacheHitRate), CostPer1k: known(r.CostPer1k),
			Queue: r.Queue, OldestSeconds: r.OldestAge, Inflight: r.Inflight}
		if r.Generator {
			m.Generator = &topGenerator{TTFTP50: known(r.TTFT50), TTFTP99: known(r.TTFT99), ITLP50: known(r.ITL50),
				TokensPerSecond: known(r.TokenRate), Running: r.Running, Waiting: r.Waiting, KVBytes: r.KVBytes}
		}
		if r.Index != nil {
			m.LoadedBytes = r.Index.LoadedBytes
			if last := r.Index.LastUse(); !last.IsZero() {
				m.LastUsedSeconds = known(f.At.Sub(last).Seconds())
			}
		}
		s.Models = append(s.Models, m)
	}
	if len(f.Rollouts) > 0 {
		s.Rollouts = map[string]deploy.State{}
		for model, ro := range f.Rollouts {
			s.Rollouts[model] = ro.State
		}
	}
	s.Errors, s.RolloutErrors = messages(f.Errors), messages(f.RolloutErrors)
	return s
}

// known is v, or nil when it is not a number yet (NaN) or none (±Inf),
// which JSON cannot hold.
func known(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func messages(errs map[string]error) map[string]string {
	if len(errs) == 0 {
		return nil
	}
	out := make(map[string]string, len(errs))
	for k, err := range errs {
		out[k] = err.Error()
	}
	return out
}
