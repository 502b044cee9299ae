package monitor

import (
	"math"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/window"
)

// BudgetPhases are the server-side phases a request's handling time is
// split into, in order.
var BudgetPhases = []profile.Phase{profile.Admission, profile.Queue, profile.Preprocess, profile.Infer, profile.Postprocess}

// Figures are one model version's figures over a window: the difference
// between two samples, with gauges as they stood at the window's end.
// Figures that had nothing to be computed from are NaN.
type Figures struct {
	Key
	Window time.Duration
	// Requests finished in the window, over every outcome; Rate the same
	// per second; ErrorRate the share that did not succeed.
	Requests, Rate, ErrorRate float64
	// Errors counts the failures by outcome.
	Errors map[string]float64
	// Latency is the server's handling time of the window's successful
	// requests; P50, P95 and P99 its percentiles, in seconds.
	Latency       window.Histogram
	P50, P95, P99 float64
	// Budget holds each of BudgetPhases' mean, in seconds.
	Budget [profile.NumPhases]float64
	// MeanBatch is the mean rows per execution.
	MeanBatch float64
	// CacheHitRate is the share of cache lookups that hit.
	CacheHitRate float64
	// CostPer1k is the cost of 1,000 successful requests, in US dollars.
	CostPer1k float64
	// Busy is the instances' execution time in the window, in seconds.
	Busy float64
	// Gauges at the window's end.
	Queue, OldestAge, Inflight float64
	Ready                      bool
	// A text generator's figures: time to first token (p50, p99) and
	// between tokens (p50), in seconds; output tokens per second; and the
	// gauges.
	Generator                 bool
	TTFT50, TTFT99, ITL50     float64
	TokenRate                 float64
	Running, Waiting, KVBytes float64
	// Quality is the version's quality monitoring, nil when it samples no
	// requests.
	Quality *QualityFigures
}

// Between returns the figures of every model version in now for the
// time since before (a sample of the same server, earlier). A counter
// that went down means the server restarted in between; the counts since
// the restart are the window's. serverUSDPerHour, when above 0, prices
// the whole server by the hour and splits its cost over the model
// versions by busy time, for those the server does not price itself.
func Between(before, now Sample, serverUSDPerHour float64) []Figures {
	wall := now.At.Sub(before.At)
	var allBusy float64
	busy := map[Key]float64{}
	for k, c := range now.Versions {
		var was float64
		if b := before.Versions[k]; b != nil {
			was = b.Busy
		}
		busy[k] = window.CounterDelta(c.Busy, was)
		allBusy += busy[k]
	}
	out := make([]Figures, 0, len(now.Versions))
	for _, k := range now.Keys() {
		c := now.Versions[k]
		b := before.Versions[k]
		if b == nil {
			b = &Counters{}
		}
		f := Figures{Key: k, Window: wall, Errors: map[string]float64{},
			Queue: c.Queue, OldestAge: c.OldestAge, Inflight: c.Inflight, Ready: c.Ready, Busy: busy[k],
			P50: math.NaN(), P95: math.NaN(), P99: math.NaN(), MeanBatch: math.NaN(), CacheHitRate: math.NaN(), CostPer1k: math.NaN()}
		for _, p := range BudgetPhases {
			f.Budget[p] = math.NaN()
		}
		var success float64
		for outcome, n := range c.Requests {
			d := window.CounterDelta(n, b.Requests[outcome])
			f.Requests += d
			if outcome == "success" {
				success = d
			} else if d > 0 {
				f.Errors[outcome] = d
			}
		}
		if wall > 0 {
			f.Rate = f.Requests / wall.Seconds()
		}
		if f.Requests > 0 {
			f.ErrorRate = (f.Requests - success) / f.Requests
		}
		f.Latency = window.Delta(c.Phases[profile.Total], b.Phases[profile.Total])
		f.P50, f.P95, f.P99 = f.Latency.Quantile(0.50), f.Latency.Quantile(0.95), f.Latency.Quantile(0.99)
		for _, p := range BudgetPhases {
			f.Budget[p] = window.Delta(c.Phases[p], b.Phases[p]).Mean()
		}
		f.MeanBatch = window.Delta(c.Batch, b.Batch).Mean()
		if c.HasCache {
			hits := window.CounterDelta(c.CacheHits, b.CacheHits)
			if n := hits + window.CounterDelta(c.CacheMisses, b.CacheMisses); n > 0 {
				f.CacheHitRate = hits / n
			}
		}
		switch {
		case success <= 0:
		case c.HasCost:
			f.CostPer1k = 1000 * window.CounterDelta(c.CostUSD, b.CostUSD) / success
		case serverUSDPerHour > 0:
			price := profile.Price{USDPerHour: serverUSDPerHour}
			f.CostPer1k = 1000 * price.Share(wall, seconds(f.Busy), seconds(allBusy), success)
		}
		f.Quality = qualityBetween(b.Quality, c.Quality, wall.Seconds())
		if c.Generator {
			f.Generator, f.Running, f.Waiting, f.KVBytes = true, c.Running, c.Waiting, c.KVBytes
			ttft := window.Delta(c.TTFT, b.TTFT)
			f.TTFT50, f.TTFT99 = ttft.Quantile(0.5), ttft.Quantile(0.99)
			f.ITL50 = window.Delta(c.ITL, b.ITL).Quantile(0.5)
			f.TokenRate = math.NaN()
			if wall > 0 {
				f.TokenRate = window.CounterDelta(c.OutputTokens, b.OutputTokens) / wall.Seconds()
			}
		}
		out = append(out, f)
	}
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
