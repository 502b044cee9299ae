package pipeline

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stepMetrics are a pipeline version's series: each step's duration and
// failures. The core collects them while the version is loaded.
type stepMetrics struct {
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	names    []string
}

func newStepMetrics(model string, version int64, steps []*step) *stepMetrics {
	labels := prometheus.Labels{"model": model, "version": strconv.FormatInt(version, 10)}
	m := &stepMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "infer_pipeline_step_duration_seconds",
			Help:        "Time of each pipeline step that succeeded, a model step's queue included.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.00005, 2, 18), // 50 µs to 6.5 s
		}, []string{"step"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "infer_pipeline_step_failures_total",
			Help:        "Pipeline requests that failed at each step.",
			ConstLabels: labels,
		}, []string{"step"}),
	}
	for _, st := range steps {
		m.names = append(m.names, st.cfg.Name)
		m.failures.WithLabelValues(st.cfg.Name) // every step's series from the start
	}
	return m
}

func (m *stepMetrics) observe(i int, d time.Duration, err error) {
	if err != nil {
		m.failures.WithLabelValues(m.names[i]).Inc()
		return
	}
	m.duration.WithLabelValues(m.names[i]).Observe(d.Seconds())
}

// Describe sends nothing: the core collects composites unchecked.
func (p *Pipeline) Describe(chan<- *prometheus.Desc) {}

// Collect sends the pipeline's step series.
func (p *Pipeline) Collect(ch chan<- prometheus.Metric) {
	p.metrics.duration.Collect(ch)
	p.metrics.failures.Collect(ch)
}
