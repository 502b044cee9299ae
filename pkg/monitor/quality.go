package monitor

import (
	"slices"

	dto "github.com/prometheus/client_model/go"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/window"
)

// The quality monitor's metrics, as pkg/drift's collector exports them.
const (
	metricDriftScore     = "infer_drift_score"
	metricDriftAlarm     = "infer_drift_alarm"
	metricQualitySampled = "infer_quality_samples_total"
	metricQualityDropped = "infer_quality_samples_dropped_total"
)

// DriftScore is one infer_drift_score series: a test of one feature of
// the last closed window against the baseline.
type DriftScore struct {
	Role, Tensor, Feature, Test string
	Value                       float64
}

// Where names the score's feature as "role/tensor/feature", as drift
// reports name what drifted.
func (s DriftScore) Where() string { return s.Role + "/" + s.Tensor + "/" + s.Feature }

// QualityCounters are a monitored version's quality metrics at one
// moment.
type QualityCounters struct {
	// Sampled and Dropped count the requests sampled, and sampled but
	// dropped on a full queue.
	Sampled, Dropped float64
	// Compared is whether a closed window was compared with a baseline
	// (the alarm and scores are exported then); Alarm whether a feature of
	// it drifted.
	Compared, Alarm bool
	Scores          []DriftScore
}

// quality returns c's quality counters, made on first use.
func (c *Counters) quality() *QualityCounters {
	if c.Quality == nil {
		c.Quality = &QualityCounters{}
	}
	return c.Quality
}

// parseQuality reads one series of a quality metric into c, and reports
// whether name was one.
func parseQuality(c *Counters, name string, m *dto.Metric, label func(string) string) bool {
	switch name {
	case metricQualitySampled:
		c.quality().Sampled = m.GetCounter().GetValue()
	case metricQualityDropped:
		c.quality().Dropped = m.GetCounter().GetValue()
	case metricDriftAlarm:
		q := c.quality()
		q.Compared, q.Alarm = true, m.GetGauge().GetValue() == 1
	case metricDriftScore:
		q := c.quality()
		q.Compared = true
		q.Scores = append(q.Scores, DriftScore{Role: label("role"), Tensor: label("tensor"), Feature: label("feature"),
			Test: label("test"), Value: m.GetGauge().GetValue()})
	default:
		return false
	}
	return true
}

// QualityTests are the drift tests whose largest score QualityFigures
// keep, in the order shown.
var QualityTests = []string{drift.TestPSI, drift.TestKS, drift.TestChi2, drift.TestJS, drift.TestMeanZ}

// QualityFigures are a monitored version's quality over a window: the
// sampling, and where the last closed window stands against the
// baseline.
type QualityFigures struct {
	// SampleRate is the requests sampled per second; Dropped those dropped
	// in the window.
	SampleRate, Dropped float64
	Compared, Alarm     bool
	// Worst holds the largest score of each of QualityTests that the
	// version reports, by test.
	Worst map[string]DriftScore
}

// qualityBetween returns the quality figures of now since before, nil
// when the version is not monitored.
func qualityBetween(before, now *QualityCounters, seconds float64) *QualityFigures {
	if now == nil {
		return nil
	}
	if before == nil {
		before = &QualityCounters{}
	}
	f := &QualityFigures{Compared: now.Compared, Alarm: now.Alarm, Worst: map[string]DriftScore{},
		Dropped: window.CounterDelta(now.Dropped, before.Dropped)}
	if seconds > 0 {
		f.SampleRate = window.CounterDelta(now.Sampled, before.Sampled) / seconds
	}
	for _, s := range now.Scores {
		if w, ok := f.Worst[s.Test]; slices.Contains(QualityTests, s.Test) && (!ok || s.Value > w.Value) {
			f.Worst[s.Test] = s
		}
	}
	return f
}
