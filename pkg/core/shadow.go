package core

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Shadow mirroring: a sampled request, once answered by its primary, is
// queued (never waited for) for the shadow version; workers run it there
// and again on the primary, and compare both answers with the primary's:
// primary against shadow is the drift, primary against primary the noise
// floor of run-to-run float differences (batch composition changes
// results in the last bits), as Diffy does. The shadow's answer, latency
// and failures never reach the client.
const (
	shadowQueue   = 256
	shadowWorkers = 2
	shadowTimeout = 10 * time.Second
)

type shadowJob struct {
	name            string
	primary, shadow *runner.Model
	req             runner.Request
	answer          []tensor.Tensor
}

// shadowing owns the mirror queue and its workers.
type shadowing struct {
	jobs   chan shadowJob
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	models map[string]*ShadowSummary

	requests *prometheus.CounterVec   // model, version, outcome
	drift    *prometheus.HistogramVec // model, version, comparison, measure
}

// ShadowSummary is what mirroring a model has found so far.
type ShadowSummary struct {
	Version  int64 `json:"shadow_version"`
	Mirrored int64 `json:"mirrored"`
	Dropped  int64 `json:"dropped"`
	Errors   int64 `json:"errors"`
	// Shadow compares the shadow's answers with the primary's; Noise the
	// primary's with its own second answers.
	Shadow DriftStats `json:"shadow"`
	Noise  DriftStats `json:"noise"`
}

// DriftStats aggregates comparisons.
type DriftStats struct {
	Compared      int64   `json:"compared"`
	MaxAbsDiff    float64 `json:"max_abs_diff"`
	MeanAbsDiff   float64 `json:"mean_max_abs_diff"`
	MinCosine     float64 `json:"min_cosine"`
	MeanCosine    float64 `json:"mean_cosine"`
	Top1Agreement float64 `json:"top1_agreement"` // -1: no classifier output
	top1Rows      int64
}

func (d *DriftStats) add(x deploy.Drift) {
	n := float64(d.Compared)
	if d.Compared == 0 {
		d.MinCosine, d.Top1Agreement = 1, -1
	}
	d.MaxAbsDiff = math.Max(d.MaxAbsDiff, x.MaxAbsDiff)
	d.MeanAbsDiff = (d.MeanAbsDiff*n + x.MaxAbsDiff) / (n + 1)
	d.MinCosine = math.Min(d.MinCosine, x.Cosine)
	d.MeanCosine = (d.MeanCosine*n + x.Cosine) / (n + 1)
	if x.Top1 >= 0 {
		if d.Top1Agreement < 0 {
			d.Top1Agreement = 0
		}
		k := float64(d.top1Rows)
		d.Top1Agreement = (d.Top1Agreement*k + x.Top1) / (k + 1)
		d.top1Rows++
	}
	d.Compared++
}

func newShadowing(reg *prometheus.Registry) *shadowing {
	sh := &shadowing{
		jobs:   make(chan shadowJob, shadowQueue),
		models: map[string]*ShadowSummary{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infer_shadow_requests_total",
			Help: "Requests mirrored to a shadow version, by outcome (compared, error, dropped).",
		}, []string{"model", "version", "outcome"}),
		drift: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "infer_shadow_drift",
			Help:    "Shadow comparisons: measure max_abs_diff or cosine, comparison shadow (against the primary) or noise (primary against itself).",
			Buckets: []float64{0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1},
		}, []string{"model", "version", "comparison", "measure"}),
	}
	reg.MustRegister(sh.requests, sh.drift)
	ctx, cancel := context.WithCancel(context.Background())
	sh.stop = cancel
	for range shadowWorkers {
		sh.wg.Go(func() { sh.work(ctx) })
	}
	return sh
}

func (sh *shadowing) summary(name string, version int64) *ShadowSummary {
	s, ok := sh.models[name]
	if !ok || s.Version != version {
		s = &ShadowSummary{Version: version}
		sh.models[name] = s
	}
	return s
}

// mirror queues a job unless the queue is full, in which case the mirror
// is dropped and counted: the primary path never waits.
func (sh *shadowing) mirror(job shadowJob) {
	v := job.shadow.Metadata().Version
	// The job outlives the call, whose front end reuses the buffers its
	// inputs lie in, and the state its headers are read from, once it is
	// answered: the job keeps copies of the inputs, and no headers (a
	// router's header rules see none on a shadow copy).
	job.req.Inputs = tensor.Copies(job.req.Inputs)
	job.req.Header = nil
	select {
	case sh.jobs <- job:
		sh.mu.Lock()
		sh.summary(job.name, v).Mirrored++
		sh.mu.Unlock()
	default:
		sh.requests.WithLabelValues(job.name, strconv.FormatInt(v, 10), "dropped").Inc()
		sh.mu.Lock()
		sh.summary(job.name, v).Dropped++
		sh.mu.Unlock()
	}
}

func (sh *shadowing) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-sh.jobs:
			sh.run(ctx, job)
		}
	}
}

func (sh *shadowing) run(ctx context.Context, job shadowJob) {
	v := job.shadow.Metadata().Version
	version := strconv.FormatInt(v, 10)
	ctx, cancel := context.WithTimeout(ctx, shadowTimeout)
	defer cancel()
	fail := func() {
		sh.requests.WithLabelValues(job.name, version, "error").Inc()
		sh.mu.Lock()
		sh.summary(job.name, v).Errors++
		sh.mu.Unlock()
	}
	shadowAnswer, err := job.shadow.Infer(ctx, &job.req)
	if err != nil {
		fail()
		return
	}
	drift, err := deploy.Compare(job.answer, shadowAnswer.Outputs)
	if err != nil {
		fail()
		return
	}
	var noise deploy.Drift
	haveNoise := false
	if again, err := job.primary.Infer(ctx, &job.req); err == nil {
		if noise, err = deploy.Compare(job.answer, again.Outputs); err == nil {
			haveNoise = true
		}
	}
	sh.requests.WithLabelValues(job.name, version, "compared").Inc()
	sh.drift.WithLabelValues(job.name, version, "shadow", "max_abs_diff").Observe(drift.MaxAbsDiff)
	sh.drift.WithLabelValues(job.name, version, "shadow", "cosine").Observe(drift.Cosine)
	if haveNoise {
		sh.drift.WithLabelValues(job.name, version, "noise", "max_abs_diff").Observe(noise.MaxAbsDiff)
		sh.drift.WithLabelValues(job.name, version, "noise", "cosine").Observe(noise.Cosine)
	}
	sh.mu.Lock()
	s := sh.summary(job.name, v)
	s.Shadow.add(drift)
	if haveNoise {
		s.Noise.add(noise)
	}
	sh.mu.Unlock()
}

// Summary returns what mirroring model name has found, or false.
func (s *Core) ShadowSummary(name string) (ShadowSummary, bool) {
	s.shadow.mu.Lock()
	defer s.shadow.mu.Unlock()
	sum, ok := s.shadow.models[name]
	if !ok {
		return ShadowSummary{}, false
	}
	return *sum, true
}

// shadowFor returns the shadow version an unversioned request of model
// name should also go to, or nil: per the policy's fraction, and never the
// primary itself.
func (s *Core) shadowFor(name, version string, primary *runner.Model) *runner.Model {
	if version != "" {
		return nil
	}
	p, ok := s.traffic.get(name)
	if !ok || !p.Mirror(rand.Float64()) || p.Shadow.Version == primary.Metadata().Version {
		return nil
	}
	m, err := s.repo.Model(name, p.Shadow.Version)
	if err != nil {
		return nil
	}
	return m
}

func (sh *shadowing) close() {
	sh.stop()
	sh.wg.Wait()
}
