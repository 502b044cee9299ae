// Package monitor watches running servers from the outside: it scrapes
// their Prometheus metrics, keeps a short history of those reads, and
// turns each pair of reads into the figures of the time between them
// (rates, windowed percentiles, the latency budget, cost), per model
// version. The live dashboard is drawn from what it computes.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/window"
)

// The metrics read, as the server exports them.
const (
	metricRequests = "infer_requests_total"
	metricPhases   = "infer_request_duration_seconds"
	metricTotal    = "infer_request_total_duration_seconds"
	metricInflight = "infer_inflight_requests"
	metricQueue    = "infer_queue_requests"
	metricOldest   = "infer_queue_oldest_age_seconds"
	metricBatch    = "infer_batch_size"
	metricBusy     = "infer_execution_seconds_total"
	metricCost     = "infer_cost_usd_total"
	metricReady    = "infer_model_ready"
	// MetricCache counts response-cache lookups by result (hit, miss).
	MetricCache = "infer_cache_requests_total"
	// Text generation.
	metricTTFT      = "infer_time_to_first_token_seconds"
	metricITL       = "infer_inter_token_latency_seconds"
	metricTokens    = "infer_tokens_total"
	metricSequences = "infer_sequences"
	metricKV        = "infer_kv_cache_bytes"
)

// Key names one model version on one server.
type Key struct {
	Server  string // as given, such as http://localhost:8000
	Model   string
	Version string
}

func (k Key) String() string { return k.Model + " v" + k.Version }

// Counters are one model version's metrics at one moment: cumulative
// counters and histograms, and gauges as they stood.
type Counters struct {
	// Requests counts finished requests by outcome (success, queue_full,
	// timeout...), over both protocols.
	Requests map[string]float64
	// Phases are the server-side durations of successful requests, by
	// phase; Phases[profile.Total] is their whole, read from
	// infer_request_total_duration_seconds (or, from a server older than
	// that histogram, the phase="total" series of the phases').
	Phases [profile.NumPhases]window.Histogram
	Batch  window.Histogram // rows per execution
	// Busy is the instances' execution time, in seconds; CostUSD the cost
	// the server charged for it (HasCost when it prices the model).
	Busy, CostUSD float64
	HasCost       bool
	// CacheHits and CacheMisses count response-cache lookups (HasCache
	// when the server caches this model).
	CacheHits, CacheMisses float64
	HasCache               bool
	Queue, OldestAge       float64 // requests, seconds
	Inflight               float64
	Ready                  bool
	// A text generator's: time to first token and between tokens, output
	// tokens, sequences running and waiting, and key/value bytes in use.
	Generator    bool
	TTFT, ITL    window.Histogram
	OutputTokens float64
	// Running decode each step; Waiting do not yet (prefilled or not
	// admitted).
	Running, Waiting float64
	KVBytes          float64
	// Quality is the version's quality monitoring, nil when it samples no
	// requests.
	Quality *QualityCounters
}

// Sample is every model version of one server read at one moment.
type Sample struct {
	At       time.Time
	Server   string
	Versions map[Key]*Counters
}

// Keys returns the sample's model versions, by model then version number.
func (s Sample) Keys() []Key {
	keys := make([]Key, 0, len(s.Versions))
	for k := range s.Versions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}

func (k Key) less(o Key) bool {
	if k.Server != o.Server {
		return k.Server < o.Server
	}
	if k.Model != o.Model {
		return k.Model < o.Model
	}
	if len(k.Version) != len(o.Version) { // numeric order for numbers
		return len(k.Version) < len(o.Version)
	}
	return k.Version < o.Version
}

// Parse reads a Prometheus text exposition into a sample of server taken
// at at. Metrics other than the server's own are ignored, as are requests
// for models that did not resolve to a version.
func Parse(r io.Reader, server string, at time.Time) (Sample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := Sample{At: at, Server: server, Versions: map[Key]*Counters{}}
	get := func(m *dto.Metric) *Counters {
		var k Key
		k.Server = server
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "model":
				k.Model = l.GetValue()
			case "version":
				k.Version = l.GetValue()
			}
		}
		if k.Model == "" || k.Version == "" {
			return nil
		}
		c, ok := s.Versions[k]
		if !ok {
			c = &Counters{Requests: map[string]float64{}}
			s.Versions[k] = c
		}
		return c
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			c := get(m)
			if c == nil || parseQuality(c, name, m, func(n string) string { return label(m, n) }) {
				continue
			}
			switch name {
			case metricRequests:
				c.Requests[label(m, "outcome")] += m.GetCounter().GetValue()
			case metricPhases:
				if p, ok := profile.ParsePhase(label(m, "phase")); ok {
					c.Phases[p] = window.FromProto(m.GetHistogram())
				}
			case metricTotal:
				c.Phases[profile.Total] = window.FromProto(m.GetHistogram())
			case metricBatch:
				c.Batch = window.FromProto(m.GetHistogram())
			case metricInflight:
				c.Inflight = m.GetGauge().GetValue()
			case metricQueue:
				c.Queue = m.GetGauge().GetValue()
			case metricOldest:
				c.OldestAge = m.GetGauge().GetValue()
			case metricBusy:
				c.Busy = m.GetCounter().GetValue()
			case metricCost:
				c.CostUSD, c.HasCost = m.GetCounter().GetValue(), true
			case metricReady:
				c.Ready = m.GetGauge().GetValue() == 1
			case metricTTFT:
				c.Generator, c.TTFT = true, window.FromProto(m.GetHistogram())
			case metricITL:
				c.ITL = window.FromProto(m.GetHistogram())
			case metricTokens:
				if label(m, "kind") == "output" {
					c.OutputTokens = m.GetCounter().GetValue()
				}
			case metricSequences:
				c.Generator = true
				switch label(m, "state") {
				case "running":
					c.Running = m.GetGauge().GetValue()
				case "waiting", "prefilled": // neither decodes yet
					c.Waiting += m.GetGauge().GetValue()
				}
			case metricKV:
				c.KVBytes = m.GetGauge().GetValue()
			case MetricCache:
				c.HasCache = true
				switch label(m, "result") {
				case "hit":
					c.CacheHits = m.GetCounter().GetValue()
				case "miss":
					c.CacheMisses = m.GetCounter().GetValue()
				}
			}
		}
	}
	return s, nil
}

// Scraper reads one server's metrics.
type Scraper struct {
	Server  string // the name samples carry: the server's API base URL
	Metrics string // the base URL of its /metrics; empty: Server's
	HTTP    *http.Client
	// MaxBytes bounds a page (0: DefaultMaxScrapeBytes): the parser holds
	// what it read, and a page that never ends would otherwise grow the
	// dashboard's memory until the scrape's timeout.
	MaxBytes int64
}

// DefaultMaxScrapeBytes bounds a /metrics page: a server of a thousand
// model versions writes a few megabytes.
const DefaultMaxScrapeBytes = 64 << 20

// Scrape reads the server's /metrics now.
func (sc Scraper) Scrape(ctx context.Context) (Sample, error) {
	base := sc.Metrics
	if base == "" {
		base = sc.Server
	}
	url := strings.TrimSuffix(base, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain")
	client := sc.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	at := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if hint := protocol.WrongPort(err); hint != "" {
			return Sample{}, fmt.Errorf("scrape %s: %w (%s)", url, err, hint)
		}
		return Sample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Sample{}, fmt.Errorf("scrape %s: %s (no metrics there: give the server's HTTP port, 8000 by default, or --metrics-port where a server serves them apart)", url, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	limit := sc.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxScrapeBytes
	}
	s, err := Parse(http.MaxBytesReader(nil, resp.Body, limit), sc.Server, at)
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		err = fmt.Errorf("the page is over %d bytes, the bound on its size", limit)
	}
	if err != nil {
		return Sample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}

// nan0 turns NaN (no observations) into 0.
func nan0(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
