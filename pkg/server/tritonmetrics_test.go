package server

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// families parses a scrape as Prometheus does.
func families(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// series returns the value of family's series with exactly the labels
// given, and whether there is one.
func series(fams map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f := fams[family]
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return m.GetHistogram().GetSampleSum(), true
		}
	}
	return 0, false
}

// With --metrics-compat triton, a dashboard written for Triton reads the
// same requests infer counts: successes over both protocols, failures by
// Triton's reasons, rows and executions, and the time counters as the sums
// of infer's own histograms, in microseconds.
func TestTritonMetrics(t *testing.T) {
	s, hs := start(t, nil, Options{MetricsCompat: core.MetricsCompatTriton})
	image := func(rows int) []tensor.Tensor {
		return []tensor.Tensor{tensor.New("image", []int64{int64(rows), 784}, make([]float32, rows*784))}
	}
	for range 6 {
		if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image(1)}, true); r.status != 200 {
			t.Fatalf("infer: %d %s", r.status, r.body)
		}
	}
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image(3)}, false); r.status != 200 {
		t.Fatalf("infer of 3 rows: %d %s", r.status, r.body)
	}
	client, _ := serveGRPC(t, s)
	for range 2 {
		if _, err := client.ModelInfer(context.Background(), requests.GRPC("mlp", image(1), true)); err != nil {
			t.Fatalf("gRPC infer: %v", err)
		}
	}
	bad := []tensor.Tensor{tensor.New("image", []int64{1, 783}, make([]float32, 783))}
	for range 2 {
		if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: bad}, true); r.status != 400 {
			t.Fatalf("wrong shape: %d %s, want 400", r.status, r.body)
		}
	}
	if r, _ := infer(t, hs.URL, "ghost", &protocol.InferRequest{Inputs: image(1)}, true); r.status != 404 {
		t.Fatalf("unknown model: %d %s, want 404", r.status, r.body)
	}

	text := scrape(t, s)
	fams := families(t, text)
	mlp := map[string]string{"model": "mlp", "version": "1"}
	with := func(k, v string) map[string]string {
		l := map[string]string{k: v}
		for k, v := range mlp {
			l[k] = v
		}
		return l
	}
	value := func(family string, labels map[string]string) float64 {
		t.Helper()
		v, ok := series(fams, family, labels)
		if !ok {
			t.Fatalf("no %s%v in\n%s", family, labels, text)
		}
		return v
	}

	for name, typ := range map[string]dto.MetricType{
		"nv_inference_request_success": dto.MetricType_COUNTER, "nv_inference_request_failure": dto.MetricType_COUNTER,
		"nv_inference_count": dto.MetricType_COUNTER, "nv_inference_exec_count": dto.MetricType_COUNTER,
		"nv_inference_pending_request_count":      dto.MetricType_GAUGE,
		"nv_inference_request_duration_us":        dto.MetricType_COUNTER,
		"nv_inference_queue_duration_us":          dto.MetricType_COUNTER,
		"nv_inference_compute_input_duration_us":  dto.MetricType_COUNTER,
		"nv_inference_compute_infer_duration_us":  dto.MetricType_COUNTER,
		"nv_inference_compute_output_duration_us": dto.MetricType_COUNTER,
	} {
		f := fams[name]
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want a %v", name, f.GetType(), typ)
		}
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
				if l.GetName() == "model" && l.GetValue() == "ghost" || l.GetValue() == "_unknown" {
					t.Errorf("%s has a series for a model the repository does not hold: %v", name, m.GetLabel())
				}
			}
			want := []string{"model", "version"}
			if name == "nv_inference_request_failure" {
				want = []string{"model", "reason", "version"}
			}
			if !slices.Equal(names, want) {
				t.Errorf("%s labels %v, want %v", name, names, want)
			}
		}
	}

	if got := value("nv_inference_request_success", mlp); got != 9 {
		t.Errorf("success %v, want 9 (7 over HTTP, 2 over gRPC)", got)
	}
	for reason, want := range map[string]float64{"OTHER": 2, "REJECTED": 0, "CANCELED": 0, "BACKEND": 0} {
		if got := value("nv_inference_request_failure", with("reason", reason)); got != want {
			t.Errorf("failures of reason %s: %v, want %v", reason, got, want)
		}
	}
	if got := value("nv_inference_count", mlp); got != 11 {
		t.Errorf("inference count %v, want 11 rows (8 of one, one of 3)", got)
	}
	if execs := value("nv_inference_exec_count", mlp); execs != value("infer_executions_total", mlp) || execs < 1 || execs > 9 {
		t.Errorf("exec count %v, infer_executions_total %v: want them equal, 1 to 9", execs, value("infer_executions_total", mlp))
	}
	if got := value("nv_inference_pending_request_count", mlp); got != 0 {
		t.Errorf("pending %v, want 0 with nothing in flight", got)
	}
	// Every loaded version has its series from the start, at 0.
	if got, ok := series(fams, "nv_inference_request_success", map[string]string{"model": "fixed-shape", "version": "1"}); !ok || got != 0 {
		t.Errorf("fixed-shape's success %v (present %v), want 0", got, ok)
	}

	// The time counters are infer's histograms' sums, in microseconds.
	sum := func(phases ...string) float64 {
		var s float64
		for _, p := range phases {
			v, _ := series(fams, "infer_request_duration_seconds", with("phase", p))
			s += v
		}
		return s * 1e6
	}
	total := value("infer_request_total_duration_seconds", mlp) * 1e6
	for family, want := range map[string]float64{
		"nv_inference_request_duration_us":        total,
		"nv_inference_queue_duration_us":          sum("admission", "queue"),
		"nv_inference_compute_input_duration_us":  sum("preprocess"),
		"nv_inference_compute_infer_duration_us":  sum("infer"),
		"nv_inference_compute_output_duration_us": sum("postprocess"),
	} {
		if got := value(family, mlp); math.Abs(got-want) > 1e-6*want || got < 0 {
			t.Errorf("%s %v µs, want %v", family, got, want)
		}
	}
	parts := value("nv_inference_queue_duration_us", mlp) + value("nv_inference_compute_input_duration_us", mlp) +
		value("nv_inference_compute_infer_duration_us", mlp) + value("nv_inference_compute_output_duration_us", mlp)
	if infer := value("nv_inference_compute_infer_duration_us", mlp); infer <= 0 || parts > total*1.001 {
		t.Errorf("compute infer %v µs, parts %v µs, request %v µs: want infer > 0 and the parts within the whole", infer, parts, total)
	}
}

// Without --metrics-compat no nv_ family is exported; either way the total
// has a histogram of its own, and the phases' histogram holds only parts,
// so that summing its series counts each second once.
func TestTotalHasAHistogramOfItsOwn(t *testing.T) {
	s, hs := start(t, nil, Options{})
	for range 3 {
		if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}, true); r.status != 200 {
			t.Fatalf("infer: %d %s", r.status, r.body)
		}
	}
	text := scrape(t, s)
	if strings.Contains(text, "nv_inference") {
		t.Errorf("Triton's families exported without --metrics-compat triton")
	}
	fams := families(t, text)
	if f := fams["infer_request_total_duration_seconds"]; f.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("infer_request_total_duration_seconds is %v, want a histogram", f.GetType())
	}
	for _, m := range fams["infer_request_total_duration_seconds"].GetMetric() {
		if h := m.GetHistogram(); h.GetSampleCount() != 3 || h.GetSampleSum() <= 0 {
			t.Errorf("total: %d observations summing %vs, want 3 above 0", h.GetSampleCount(), h.GetSampleSum())
		}
	}
	var phases []string
	for _, m := range fams["infer_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" {
				phases = append(phases, l.GetValue())
			}
		}
	}
	var want []string
	for _, p := range profile.ServerPhases {
		want = append(want, p.String())
	}
	slices.Sort(phases)
	slices.Sort(want)
	if !slices.Equal(phases, want) || slices.Contains(phases, profile.Total.String()) {
		t.Errorf("phases %v, want %v", phases, want)
	}
}
