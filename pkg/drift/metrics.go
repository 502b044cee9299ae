package drift

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the monitors' figures to Prometheus, read when
// scraped, so that a version's series go with it when it unloads:
//
//   - infer_drift_score{model,version,role,tensor,feature,test}: each
//     score of the last closed window against the baseline. role (input or
//     output) keeps an input and an output of the same name apart. Its
//     features are a tensor's first Layout.MaxFeatures positions or its
//     summaries, so the series are bounded by the configuration, not by
//     the traffic.
//   - infer_drift_alarm{model,version}: 1 when a feature of the last
//     closed window drifted, else 0.
//   - infer_quality_samples_total{model,version} and
//     infer_quality_samples_dropped_total{model,version}: requests sampled,
//     and sampled but dropped on a full queue.
type Collector struct {
	monitors func() []*Monitor
	score    *prometheus.Desc
	alarm    *prometheus.Desc
	sampled  *prometheus.Desc
	dropped  *prometheus.Desc
}

// NewCollector returns a collector over the monitors list returns, called
// at each scrape.
func NewCollector(list func() []*Monitor) *Collector {
	return &Collector{
		monitors: list,
		score: prometheus.NewDesc("infer_drift_score", "Drift of the last closed window of sampled requests against the baseline, by test: psi (population stability index), ks (Kolmogorov-Smirnov D), chi2, js (Jensen-Shannon distance).",
			[]string{"model", "version", "role", "tensor", "feature", "test"}, nil),
		alarm: prometheus.NewDesc("infer_drift_alarm", "1 when a feature of the last closed window drifted from the baseline, else 0.",
			[]string{"model", "version"}, nil),
		sampled: prometheus.NewDesc("infer_quality_samples_total", "Requests sampled for quality monitoring.",
			[]string{"model", "version"}, nil),
		dropped: prometheus.NewDesc("infer_quality_samples_dropped_total", "Requests sampled for quality monitoring but dropped because the monitor's queue was full.",
			[]string{"model", "version"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.score
	ch <- c.alarm
	ch <- c.sampled
	ch <- c.dropped
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.monitors() {
		model, version := m.Model()
		v := strconv.FormatInt(version, 10)
		ch <- prometheus.MustNewConstMetric(c.sampled, prometheus.CounterValue, float64(m.sampled.Load()), model, v)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(m.dropped.Load()), model, v)
		m.mu.Lock()
		r := m.report
		m.mu.Unlock()
		if r == nil {
			continue
		}
		alarm := 0.0
		if r.Alarm() {
			alarm = 1
		}
		ch <- prometheus.MustNewConstMetric(c.alarm, prometheus.GaugeValue, alarm, model, v)
		for _, s := range r.Scores {
			ch <- prometheus.MustNewConstMetric(c.score, prometheus.GaugeValue, s.Value, model, v, s.Role, s.Tensor, s.Feature, s.Test)
		}
	}
}
