package core

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
)

// metrics are the server's Prometheus metrics. Per-request observations go
// through observers cached per model version, so the hot path does no
// label hashing; everything the runner already counts (queues, batch
// sizes, load times) is read at scrape time by repositoryCollector.
type metrics struct {
	registry *prometheus.Registry
	repo     *runner.Repository
	requests *prometheus.CounterVec   // model, version, protocol, outcome
	phases   *prometheus.HistogramVec // model, version, phase
	total    *prometheus.HistogramVec // model, version
	inflight *prometheus.GaugeVec     // model, version
	// fallbacks counts the requests fallbacks answered, by kind.
	fallbacks *prometheus.CounterVec // model, version, via
	// Text generation: time to first token, between tokens, and tokens.
	ttft, itl *prometheus.HistogramVec // model, version
	tokens    *prometheus.CounterVec   // model, version, kind (prompt, output)
	// panics counts the requests a panic ended.
	panics *prometheus.CounterVec // protocol

	// observed holds each model version's observers.
	observed perModel[*modelObservers]
}

// observedPhases are the phases a successful request observes in
// infer_request_duration_seconds; their whole, profile.Total, has a
// histogram of its own, so that summing the phases' series counts each
// second once.
var observedPhases = profile.ServerPhases

// The request histograms' names, which the rollout analysis reads back.
const (
	metricPhases = "infer_request_duration_seconds"
	metricTotal  = "infer_request_total_duration_seconds"
)

type modelObservers struct {
	phases   [profile.NumPhases]prometheus.Observer
	total    prometheus.Observer
	inflight prometheus.Gauge
	success  map[string]prometheus.Counter // by protocol
	gen      *genObservers                 // a text generator's, else nil
}

// Protocol labels.
const (
	ProtoHTTP = "http"
	ProtoGRPC = "grpc"
	// ProtoNATS and ProtoRedis label requests the queue front end took
	// from NATS JetStream or Redis Streams.
	ProtoNATS  = "nats"
	ProtoRedis = "redis"
)

// latencyBuckets run from 50 µs to 10 s, in seconds.
var latencyBuckets = prometheus.ExponentialBucketsRange(50e-6, 10, 24)

func newMetrics(repo *runner.Repository) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		repo:     repo,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infer_requests_total",
			Help: "Inference requests by model, version, protocol and outcome (success, invalid, not_found, queue_full, unavailable, timeout, canceled, error).",
		}, []string{"model", "version", "protocol", "outcome"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricPhases,
			Help:    "Server-side duration of successful inference requests by phase (admission, queue, cache, preprocess, infer, postprocess); their whole is infer_request_total_duration_seconds.",
			Buckets: latencyBuckets,
		}, []string{"model", "version", "phase"}),
		total: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricTotal,
			Help:    "Server-side duration of successful inference requests, from arrival to the response's encoding: the sum of their phases.",
			Buckets: latencyBuckets,
			// Native buckets too, 4.4% wide where the classic ones are 70%:
			// the rollout analysis ranks latencies by them, and a Prometheus
			// that scrapes native histograms gets exact-enough quantiles.
			// The text exposition is unchanged. The phases keep the classic
			// buckets alone: their means make the budget, and a native
			// observation costs each request a map lookup a phase.
			NativeHistogramBucketFactor: 1.05,
		}, labels),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "infer_inflight_requests",
			Help: "Inference requests being handled now.",
		}, []string{"model", "version"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infer_fallback_total",
			Help: "Requests answered while a model version's circuit breaker was open, by what answered: cache, model, static, or unavailable (refused with 503).",
		}, []string{"model", "version", "via"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "infer_time_to_first_token_seconds", Help: "Text generation: from the request to its first token.", Buckets: latencyBuckets,
		}, labels),
		itl: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "infer_inter_token_latency_seconds", Help: "Text generation: between a sequence's tokens.", Buckets: latencyBuckets,
		}, labels),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infer_tokens_total", Help: "Text generation: prompt tokens in and output tokens out.",
		}, append(labels, "kind")),
	}
	m.panics = newPanicCounter()
	m.registry.MustRegister(m.panics, m.requests, m.phases, m.total, m.inflight, m.fallbacks, m.ttft, m.itl, m.tokens,
		repositoryCollector{repo},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	return m
}

func (m *metrics) forModel(model *runner.Model) *modelObservers {
	return m.observed.get(model, m.observers)
}

// forget drops the request series of a version that was unloaded, as
// Triton drops an unloaded model's metrics: a server that loads and
// unloads versions on demand, or polls a repository that gains new ones,
// would otherwise keep series for every version it ever served. A version
// loaded again starts its counters from zero, which Prometheus's rate()
// reads as a reset. A version replaced by a new load of itself keeps its
// series.
func (m *metrics) forget(name string, version int64) {
	m.observed.forget(func(model *runner.Model) bool {
		meta := model.Metadata()
		return meta.Name == name && meta.Version == version
	})
	if cur, err := m.repo.Model(name, version); err == nil && !cur.Closed() {
		return // replaced by a new load of the same version: its series go on
	}
	l := prometheus.Labels{"model": name, "version": strconv.FormatInt(version, 10)}
	m.requests.DeletePartialMatch(l)
	m.phases.DeletePartialMatch(l)
	m.total.DeletePartialMatch(l)
	m.inflight.DeletePartialMatch(l)
	m.fallbacks.DeletePartialMatch(l)
	m.ttft.DeletePartialMatch(l)
	m.itl.DeletePartialMatch(l)
	m.tokens.DeletePartialMatch(l)
}

// observers makes model's observers.
func (m *metrics) observers(model *runner.Model) *modelObservers {
	meta := model.Metadata()
	v := strconv.FormatInt(meta.Version, 10)
	o := &modelObservers{inflight: m.inflight.WithLabelValues(meta.Name, v), total: m.total.WithLabelValues(meta.Name, v),
		success: map[string]prometheus.Counter{}}
	for _, p := range []string{ProtoHTTP, ProtoGRPC, ProtoNATS, ProtoRedis} {
		o.success[p] = m.requests.WithLabelValues(meta.Name, v, p, "success")
	}
	for _, p := range observedPhases {
		o.phases[p] = m.phases.WithLabelValues(meta.Name, v, p.String())
	}
	if model.Generator() != nil {
		o.gen = &genObservers{ttft: m.ttft.WithLabelValues(meta.Name, v), itl: m.itl.WithLabelValues(meta.Name, v),
			promptTokens: m.tokens.WithLabelValues(meta.Name, v, "prompt"), outTokens: m.tokens.WithLabelValues(meta.Name, v, "output")}
	}
	return o
}

// unknownModel labels the requests for a model name the repository does
// not know: a client's made-up names all count under it, so they add one
// series per protocol and outcome, not one per name. Model folders never
// begin with "_" in practice, and Prometheus reserves only label names,
// not values, that begin with "__".
const unknownModel = "_unknown"

// modelLabel returns name when the repository knows the model, ready or
// not, else unknownModel: label values come only from the repository.
func (m *metrics) modelLabel(name string) string {
	if _, err := m.repo.Model(name, 0); errors.Is(err, runner.ErrModelNotFound) {
		return unknownModel
	}
	return name
}

// record counts a finished request of model (nil when it did not resolve:
// name then labels it if the repository knows it, else unknownModel) and,
// on success, observes its phases.
func (m *metrics) record(model *runner.Model, name, protocol string, t *profile.Timing, err error) {
	if err != nil || model == nil {
		version := ""
		if model != nil {
			meta := model.Metadata()
			name, version = meta.Name, strconv.FormatInt(meta.Version, 10)
		} else {
			name = m.modelLabel(name)
		}
		m.requests.WithLabelValues(name, version, protocol, outcome(err)).Inc()
		return
	}
	o := m.forModel(model)
	o.success[protocol].Inc()
	for _, p := range observedPhases {
		if p == profile.Cache && t.Get(p) == 0 {
			continue // no cache took part
		}
		o.phases[p].Observe(t.Get(p).Seconds())
	}
	o.total.Observe(t.Get(profile.Total).Seconds())
}

// repositoryCollector exports, at scrape time, what each loaded model
// version's runner counts.
type repositoryCollector struct{ repo *runner.Repository }

var (
	labels        = []string{"model", "version"}
	descQueue     = prometheus.NewDesc("infer_queue_requests", "Requests waiting in the model's queue.", labels, nil)
	descOldest    = prometheus.NewDesc("infer_queue_oldest_age_seconds", "How long the oldest queued request has waited.", labels, nil)
	descBatch     = prometheus.NewDesc("infer_batch_size", "Rows per execution.", labels, nil)
	descExecs     = prometheus.NewDesc("infer_executions_total", "Batches executed.", labels, nil)
	descRows      = prometheus.NewDesc("infer_inferences_total", "Rows executed, over all batches.", labels, nil)
	descBusy      = prometheus.NewDesc("infer_execution_seconds_total", "Time the model's instances spent executing.", labels, nil)
	descLoad      = prometheus.NewDesc("infer_model_load_seconds", "Time to read the graph and create the sessions.", labels, nil)
	descWarmup    = prometheus.NewDesc("infer_model_warmup_seconds", "Time the warm-up runs took.", labels, nil)
	descReady     = prometheus.NewDesc("infer_model_ready", "1 when the model version is ready, else 0.", labels, nil)
	descCost      = prometheus.NewDesc("infer_cost_usd_total", "Estimated cost of the instances' busy time, from cost.usd_per_hour.", labels, nil)
	descCostReq   = prometheus.NewDesc("infer_cost_per_request_usd", "Estimated cost per successful request since load: usd_per_hour x busy hours / requests.", labels, nil)
	descCache     = prometheus.NewDesc("infer_cache_requests_total", "Response-cache lookups by result (hit, miss); a text model counts one a string.", append(labels, "result"), nil)
	descCacheMem  = prometheus.NewDesc("infer_cache_bytes", "Bytes the response cache holds.", labels, nil)
	descCacheEv   = prometheus.NewDesc("infer_cache_evictions_total", "Response-cache entries evicted to stay within max_bytes.", labels, nil)
	descSeqs      = prometheus.NewDesc("infer_sequences", "Text generation: sequences running in the batch (running), prefilled and waiting for a slot (prefilled), and waiting for admission (waiting).", append(labels, "state"), nil)
	descKV        = prometheus.NewDesc("infer_kv_cache_bytes", "Text generation: key/value cache memory in use (sequences' and the prefix cache's).", labels, nil)
	descKVCap     = prometheus.NewDesc("infer_kv_cache_blocks", "Text generation: key/value blocks the budget holds.", labels, nil)
	descPrefix    = prometheus.NewDesc("infer_prefix_cache_blocks_total", "Text generation: full prompt blocks looked up in the prefix cache, by result (hit, miss).", append(labels, "result"), nil)
	descHostCrash = prometheus.NewDesc("infer_model_host_crashes_total", "Model hosts (isolation: process) that died: a signal, an exit, or going over resources.memory (those also count in infer_model_host_memory_faults_total).", labels, nil)
	descHostMem   = prometheus.NewDesc("infer_model_host_memory_faults_total", "Model hosts restarted for going over resources.memory.", labels, nil)
	descHostStart = prometheus.NewDesc("infer_model_host_restarts_total", "Model hosts started again after one died.", labels, nil)
	batchBuckets  = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
)

func (c repositoryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descOldest, descBatch, descExecs, descRows, descBusy, descLoad, descWarmup, descReady, descCost, descCostReq, descCache, descCacheMem, descCacheEv,
		descSeqs, descKV, descKVCap, descPrefix, descHostCrash, descHostMem, descHostStart} {
		ch <- d
	}
}

func (c repositoryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.repo.Index() {
		v := strconv.FormatInt(st.Version, 10)
		if st.Isolation == runner.IsolationProcess {
			ch <- prometheus.MustNewConstMetric(descHostCrash, prometheus.CounterValue, float64(st.HostCrashes), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descHostMem, prometheus.CounterValue, float64(st.HostMemoryFaults), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descHostStart, prometheus.CounterValue, float64(st.HostRestarts), st.Name, v)
		}
		m, err := c.repo.Model(st.Name, st.Version)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, 0, st.Name, v)
			continue
		}
		s := m.Stats()
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, 1, st.Name, v)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.QueueLength), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, s.OldestQueued.Seconds(), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descExecs, prometheus.CounterValue, float64(s.Executions), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descRows, prometheus.CounterValue, float64(s.Rows), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.CounterValue, s.ExecutionTime.Seconds(), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descLoad, prometheus.GaugeValue, m.LoadDuration().Seconds(), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descWarmup, prometheus.GaugeValue, m.WarmupDuration().Seconds(), st.Name, v)
		if g := generate.Of(m); g != nil {
			gs := g.Stats()
			ch <- prometheus.MustNewConstMetric(descSeqs, prometheus.GaugeValue, float64(gs.Running), st.Name, v, "running")
			ch <- prometheus.MustNewConstMetric(descSeqs, prometheus.GaugeValue, float64(gs.Prefilled), st.Name, v, "prefilled")
			ch <- prometheus.MustNewConstMetric(descSeqs, prometheus.GaugeValue, float64(gs.Waiting), st.Name, v, "waiting")
			ch <- prometheus.MustNewConstMetric(descKV, prometheus.GaugeValue, float64(gs.KVBytesUsed), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descKVCap, prometheus.GaugeValue, float64(gs.KVBlocks), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descPrefix, prometheus.CounterValue, float64(gs.PrefixHits), st.Name, v, "hit")
			ch <- prometheus.MustNewConstMetric(descPrefix, prometheus.CounterValue, float64(gs.PrefixLookups-gs.PrefixHits), st.Name, v, "miss")
		}
		if c := s.Cache; c != nil {
			ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(c.Hits), st.Name, v, "hit")
			ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(c.Misses), st.Name, v, "miss")
			ch <- prometheus.MustNewConstMetric(descCacheMem, prometheus.GaugeValue, float64(c.Bytes), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descCacheEv, prometheus.CounterValue, float64(c.Evictions), st.Name, v)
		}
		if usd := m.Config().Cost.USDPerHour; usd > 0 {
			price := profile.Price{USDPerHour: usd}
			ch <- prometheus.MustNewConstMetric(descCost, prometheus.CounterValue, price.Of(s.ExecutionTime), st.Name, v)
			ch <- prometheus.MustNewConstMetric(descCostReq, prometheus.GaugeValue, price.PerRequest(s.ExecutionTime, s.Success), st.Name, v)
		}

		buckets := make(map[float64]uint64, len(batchBuckets))
		var count uint64
		var sum float64
		for size, n := range s.BatchSizes {
			count += uint64(n)
			sum += float64(size) * float64(n)
			for _, b := range batchBuckets {
				if float64(size) <= b {
					buckets[b] += uint64(n)
				}
			}
		}
		ch <- prometheus.MustNewConstHistogram(descBatch, count, sum, buckets, st.Name, v)
	}
}

// fallback counts a request a fallback answered (or refused) for model.
func (m *metrics) fallback(model *runner.Model, via string) {
	meta := model.Metadata()
	kind, _, _ := strings.Cut(via, ":")
	m.fallbacks.WithLabelValues(meta.Name, strconv.FormatInt(meta.Version, 10), kind).Inc()
}

// guardCollector exports each circuit breaker's state at scrape time.
type guardCollector struct{ g *guards }

var descCircuit = prometheus.NewDesc("infer_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", labels, nil)

func (c guardCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCircuit }

func (c guardCollector) Collect(ch chan<- prometheus.Metric) {
	c.g.by.each(func(m *runner.Model, gd *guard) {
		if gd != nil && !m.Closed() {
			meta := m.Metadata()
			ch <- prometheus.MustNewConstMetric(descCircuit, prometheus.GaugeValue, float64(gd.breaker.State()), meta.Name, strconv.FormatInt(meta.Version, 10))
		}
	})
}

// genObservers are a generator's per-request observers.
type genObservers struct {
	ttft, itl               prometheus.Observer
	promptTokens, outTokens prometheus.Counter
}

// forGenerator returns a text generator's observers.
func (m *metrics) forGenerator(model *runner.Model) *genObservers { return m.forModel(model).gen }

// RecordGeneration counts a finished generation request of model (nil
// when it did not resolve: name labels it) and, on success, observes its
// end-to-end time as its total.
func (s *Core) RecordGeneration(model *runner.Model, name string, took time.Duration, err error) {
	s.metrics.recordGeneration(model, name, took, err)
}

// Panicked logs a panic that ended a request of protocol (ProtoHTTP,
// ProtoGRPC), with its stack, counts it, and returns the error the
// request is answered with; what names the request for the log.
func (s *Core) Panicked(protocol, what string, v any) error {
	s.metrics.panics.WithLabelValues(protocol).Inc()
	s.log.Error("panic serving a request", "protocol", protocol, "request", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	return fmt.Errorf("internal error serving %s", what)
}

// recordGeneration counts a finished generation request of model (nil
// when it did not resolve: name labels it) and, on success, observes its
// end-to-end time as its total.
func (m *metrics) recordGeneration(model *runner.Model, name string, took time.Duration, err error) {
	if err != nil || model == nil {
		m.record(model, name, ProtoHTTP, nil, err)
		return
	}
	o := m.forModel(model)
	o.success[ProtoHTTP].Inc()
	o.total.Observe(took.Seconds())
}

// newPanicCounter counts the requests a panic ended, by protocol.
func newPanicCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "infer_panics_total",
		Help: "Requests a panic in the server ended (answered 500 or INTERNAL), by protocol (http, grpc).",
	}, []string{"protocol"})
	for _, p := range []string{ProtoHTTP, ProtoGRPC} {
		c.WithLabelValues(p) // both series exist from the start, at 0
	}
	return c
}
