package core

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/profile"
)

// MetricsCompat names another server's metric families the core exports
// beside its own, so that dashboards and alerts written for that server
// read an infer server unchanged.
type MetricsCompat string

// The metric compatibilities.
const (
	// MetricsCompatNone exports infer's own metrics only.
	MetricsCompatNone MetricsCompat = ""
	// MetricsCompatTriton adds Triton Inference Server's per-model
	// nv_inference_* families (docs/user_guide/metrics.md of
	// triton-inference-server/server), the ones its Grafana dashboards
	// and perf_analyzer read.
	MetricsCompatTriton MetricsCompat = "triton"
)

// ParseMetricsCompat returns the compatibility called name: "triton", or
// "" and "none" for none.
func ParseMetricsCompat(name string) (MetricsCompat, error) {
	switch name {
	case "", "none":
		return MetricsCompatNone, nil
	case string(MetricsCompatTriton):
		return MetricsCompatTriton, nil
	}
	return "", fmt.Errorf("metrics compatibility %q: want triton or none", name)
}

// tritonCollector exports, at scrape time, Triton's per-model inference
// families for every loaded model version, derived from infer's own
// metrics, so the request path observes nothing twice:
//
//	nv_inference_request_success            infer_requests_total{outcome="success"}, all protocols
//	nv_inference_request_failure{reason}    the other outcomes (tritonReason)
//	nv_inference_count                      infer_inferences_total: rows executed, cache hits not counted
//	nv_inference_exec_count                 infer_executions_total
//	nv_inference_pending_request_count      infer_queue_requests, plus a generator's sequences waiting for admission
//	nv_inference_request_duration_us        the sum of infer_request_total_duration_seconds, in µs
//	nv_inference_queue_duration_us          the admission and queue phases' sums, in µs
//	nv_inference_compute_input_duration_us  the preprocess phase's sum, in µs
//	nv_inference_compute_infer_duration_us  the infer phase's sum, in µs
//	nv_inference_compute_output_duration_us the postprocess phase's sum, in µs
//
// As Triton's, the durations are counters of successful requests' time,
// and every family has the labels model and version.
type tritonCollector struct{ m *metrics }

// Triton's failure reasons, the values of nv_inference_request_failure's
// reason label.
var tritonReasons = [...]string{"REJECTED", "CANCELED", "BACKEND", "OTHER"}

// tritonReason returns the index in tritonReasons of a failure's outcome
// (errors.go's outcome): Triton counts a request its scheduler turned away
// or timed out as REJECTED, one its client canceled as CANCELED, one the
// model failed to execute as BACKEND, and any other as OTHER.
func tritonReason(outcome string) int {
	switch outcome {
	case "queue_full", "timeout":
		return 0
	case "canceled":
		return 1
	case "error":
		return 2
	}
	return 3
}

// The duration counters, in the order of descDurations.
const (
	nvRequest = iota
	nvQueue
	nvInput
	nvInfer
	nvOutput
	numNVDurations
)

var (
	descNVSuccess = prometheus.NewDesc("nv_inference_request_success", "Triton-compatible: successful inference requests, each counted once whatever its batch size.", labels, nil)
	descNVFailure = prometheus.NewDesc("nv_inference_request_failure", "Triton-compatible: failed inference requests, by reason (REJECTED: queue full or timed out; CANCELED; BACKEND: the model failed; OTHER).", append(labels, "reason"), nil)
	descNVCount   = prometheus.NewDesc("nv_inference_count", "Triton-compatible: inferences performed, a batch of n counting n (cache hits not counted).", labels, nil)
	descNVExec    = prometheus.NewDesc("nv_inference_exec_count", "Triton-compatible: model executions (batches) performed (cache hits not counted).", labels, nil)
	descNVPending = prometheus.NewDesc("nv_inference_pending_request_count", "Triton-compatible: requests received and not yet executing.", labels, nil)
	// descDurations are indexed by nvRequest...nvOutput.
	descDurations = [numNVDurations]*prometheus.Desc{
		prometheus.NewDesc("nv_inference_request_duration_us", "Triton-compatible: cumulative handling time of successful inference requests, in microseconds (cache hits included).", labels, nil),
		prometheus.NewDesc("nv_inference_queue_duration_us", "Triton-compatible: cumulative time successful requests waited to be admitted and batched, in microseconds.", labels, nil),
		prometheus.NewDesc("nv_inference_compute_input_duration_us", "Triton-compatible: cumulative time successful requests spent decoding inputs (preprocess), in microseconds.", labels, nil),
		prometheus.NewDesc("nv_inference_compute_infer_duration_us", "Triton-compatible: cumulative time successful requests spent executing in the runtime, in microseconds.", labels, nil),
		prometheus.NewDesc("nv_inference_compute_output_duration_us", "Triton-compatible: cumulative time successful requests spent encoding outputs (postprocess), in microseconds.", labels, nil),
	}
)

// nvDuration returns the duration counter a phase adds to, or -1.
func nvDuration(p profile.Phase) int {
	switch p {
	case profile.Admission, profile.Queue:
		return nvQueue
	case profile.Preprocess:
		return nvInput
	case profile.Infer:
		return nvInfer
	case profile.Postprocess:
		return nvOutput
	}
	return -1
}

func (c tritonCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNVSuccess, descNVFailure, descNVCount, descNVExec, descNVPending} {
		ch <- d
	}
	for _, d := range descDurations {
		ch <- d
	}
}

// tritonCounts are one model version's request counts and times.
type tritonCounts struct {
	success  float64
	failures [len(tritonReasons)]float64
	micros   [numNVDurations]float64
}

func (c tritonCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.counts()
	for _, st := range c.m.repo.Index() {
		model, err := c.m.repo.Model(st.Name, st.Version)
		if err != nil {
			continue // not loaded: Triton shows only the models it serves
		}
		v := strconv.FormatInt(st.Version, 10)
		n := counts[versionKey{st.Name, v}]
		if n == nil {
			n = &tritonCounts{}
		}
		s := model.Stats()
		pending := s.QueueLength
		if g := generate.Of(model); g != nil {
			pending += g.Stats().Waiting
		}
		ch <- prometheus.MustNewConstMetric(descNVSuccess, prometheus.CounterValue, n.success, st.Name, v)
		for i, reason := range tritonReasons {
			ch <- prometheus.MustNewConstMetric(descNVFailure, prometheus.CounterValue, n.failures[i], st.Name, v, reason)
		}
		ch <- prometheus.MustNewConstMetric(descNVCount, prometheus.CounterValue, float64(s.Rows), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descNVExec, prometheus.CounterValue, float64(s.Executions), st.Name, v)
		ch <- prometheus.MustNewConstMetric(descNVPending, prometheus.GaugeValue, float64(pending), st.Name, v)
		for i, d := range descDurations {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, n.micros[i], st.Name, v)
		}
	}
}

// versionKey names a model version by its labels.
type versionKey struct{ model, version string }

// counts reads the request counter and the duration histograms as they
// stand, by model version.
func (c tritonCollector) counts() map[versionKey]*tritonCounts {
	out := map[versionKey]*tritonCounts{}
	get := func(m *dto.Metric) (*tritonCounts, map[string]string) {
		l := labelMap(m.GetLabel())
		k := versionKey{l["model"], l["version"]}
		n := out[k]
		if n == nil {
			n = &tritonCounts{}
			out[k] = n
		}
		return n, l
	}
	for _, m := range written(c.m.requests) {
		n, l := get(m)
		if l["outcome"] == "success" {
			n.success += m.GetCounter().GetValue()
		} else {
			n.failures[tritonReason(l["outcome"])] += m.GetCounter().GetValue()
		}
	}
	for _, m := range written(c.m.phases) {
		n, l := get(m)
		if p, ok := profile.ParsePhase(l["phase"]); ok {
			if i := nvDuration(p); i >= 0 {
				n.micros[i] += m.GetHistogram().GetSampleSum() * 1e6
			}
		}
	}
	for _, m := range written(c.m.total) {
		n, _ := get(m)
		n.micros[nvRequest] += m.GetHistogram().GetSampleSum() * 1e6
	}
	return out
}

// written returns what collector c holds now, each metric as written out
// for exposition.
func written(c prometheus.Collector) []*dto.Metric {
	ch := make(chan prometheus.Metric)
	go func() { // ends when Collect does; the loop below drains it
		c.Collect(ch)
		close(ch)
	}()
	var out []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil {
			out = append(out, &d)
		}
	}
	return out
}
