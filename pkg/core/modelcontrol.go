package core

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/runner"
)

// coldStartBuckets span an on-demand load: milliseconds (a small model in
// process) to minutes (a large one on a GPU), in seconds.
var coldStartBuckets = prometheus.ExponentialBucketsRange(1e-3, 300, 20)

// modelControlMetrics count the repository's loads and unloads by reason
// and time its on-demand cold starts and the requests that wait on them.
type modelControlMetrics struct {
	loads, unloads  *prometheus.CounterVec
	coldStart, wait *prometheus.HistogramVec
	repo            *runner.Repository
	// unloaded is told of each version unloaded.
	unloaded func(name string, version int64)
}

var (
	descLoadedBytes = prometheus.NewDesc("infer_model_loaded_bytes",
		"A loaded model version's memory, measured at load and every second after: its model hosts' resident memory (isolation process), else the C heap its load took.", labels, nil)
	descHostsRSS = prometheus.NewDesc("infer_model_hosts_resident_memory_bytes",
		"The resident memory of every model host together; the server's own is process_resident_memory_bytes.", nil, nil)
	descBudget = prometheus.NewDesc("infer_memory_budget_bytes",
		"The memory budget of the loaded model versions (--memory-budget; 0: none).", nil, nil)
)

// registerModelControl registers the model control metrics and has the
// repository report its events to them; unloaded is told of each version
// unloaded.
func registerModelControl(reg prometheus.Registerer, repo *runner.Repository, unloaded func(name string, version int64)) {
	m := &modelControlMetrics{
		repo: repo, unloaded: unloaded,
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infer_model_loads_total",
			Help: "Model versions loaded while serving, by reason (on_demand, poll)."}, []string{"model", "reason"}),
		unloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infer_model_unloads_total",
			Help: "Model versions unloaded, by reason: keep_alive, budget (an eviction), admin, removed, replaced."}, []string{"model", "reason"}),
		coldStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infer_model_cold_start_seconds",
			Help: "On-demand loads, from room made under the budget to ready (sessions created, warmed up).", Buckets: coldStartBuckets}, []string{"model"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "infer_model_load_wait_seconds",
			Help: "Requests' waits for an on-demand load of the version they asked for.", Buckets: coldStartBuckets}, []string{"model"}),
	}
	reg.MustRegister(m, m.loads, m.unloads, m.coldStart, m.wait)
	repo.Observe(m.observe)
}

func (m *modelControlMetrics) observe(e runner.ControlEvent) {
	switch e.Kind {
	case runner.EventLoad:
		m.loads.WithLabelValues(e.Model, e.Reason).Inc()
		if e.Reason == runner.ReasonOnDemand {
			m.coldStart.WithLabelValues(e.Model).Observe(e.ColdStart.Seconds())
		}
	case runner.EventUnload:
		m.unloads.WithLabelValues(e.Model, e.Reason).Inc()
		m.unloaded(e.Model, e.Version)
	case runner.EventWait:
		m.wait.WithLabelValues(e.Model).Observe(e.Wait.Seconds())
	}
}

func (m *modelControlMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLoadedBytes
	ch <- descHostsRSS
	ch <- descBudget
}

func (m *modelControlMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, st := range m.repo.Index() {
		if st.State == runner.StateReady {
			ch <- prometheus.MustNewConstMetric(descLoadedBytes, prometheus.GaugeValue, float64(st.Bytes), st.Name, strconv.FormatInt(st.Version, 10))
		}
	}
	if _, hosts, err := m.repo.ProcessRSS(); err == nil {
		ch <- prometheus.MustNewConstMetric(descHostsRSS, prometheus.GaugeValue, float64(hosts))
	}
	ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(m.repo.MemoryBudget()))
}
