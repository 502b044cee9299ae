package runner

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/tensor"
)

// loadTabular loads testdata/variants/tabular.onnx in process with a
// quality monitor that samples every request and leaves the closing of
// windows to the test (Flush).
func loadTabular(t *testing.T) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "tabular.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Isolation: IsolationNone, Instances: 1, Monitor: MonitorConfig{Sample: 1, Window: Duration(time.Hour)}}
	m, err := LoadModel("tabular", 1, data, cfg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// sendRows sends requests of 50 rows of 8 standard normal features, each
// row changed by shape, and returns when the monitor has closed the
// window holding them.
func sendRows(t *testing.T, m *Model, r *rand.Rand, requests int, shape func(row []float32)) drift.Quality {
	t.Helper()
	const rows = 50
	for range requests {
		v := make([]float32, rows*8)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		for i := range rows {
			if shape != nil {
				shape(v[i*8 : (i+1)*8])
			}
		}
		req := &Request{Inputs: []tensor.Tensor{tensor.New("features", []int64{rows, 8}, v)}}
		if _, err := m.Infer(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Quality().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m.Quality().Quality()
}

// TestQualityDrift builds a baseline from one distribution of requests,
// then checks one window at a time, each of 1,000 rows: unshifted traffic
// raises no alarm in 20 windows; a shift of 0.5 standard deviations in
// feature 5 (which the outputs ignore) is flagged in the first window, on
// that input feature alone; correlating features 0 and 1 keeps every
// input's distribution and moves the class frequencies, flagged on the
// output alone.
func TestQualityDrift(t *testing.T) {
	m := loadTabular(t)
	r := rand.New(rand.NewPCG(21, 1))
	sendRows(t, m, r, 100, nil) // 5,000 rows
	base := m.Quality().Summary(time.Time{})
	if base.Requests != 100 {
		t.Fatalf("baseline holds %d requests, want 100", base.Requests)
	}
	m.Quality().SetBaseline(&base)

	for i := range 20 {
		q := sendRows(t, m, r, 20, nil)
		if q.Drift == nil || q.Drift.Current.Requests != 20 {
			t.Fatalf("window %d: report %+v, want one over 20 requests", i, q.Drift)
		}
		if q.Drift.Alarm() {
			t.Errorf("window %d of unshifted traffic: drift alarm on %v", i, q.Drift.Drifted)
		}
	}

	q := sendRows(t, m, r, 20, func(row []float32) { row[5] += 0.5 })
	if want := []string{"input/features/5"}; !slices.Equal(q.Drift.Drifted, want) {
		t.Errorf("feature 5 shifted by 0.5 sd: drifted %v, want %v", q.Drift.Drifted, want)
	}
	ks := score(t, q.Drift, "features", "5", drift.TestKS)
	if ks.Value < 0.1 || *ks.PValue > ks.Threshold {
		t.Errorf("feature 5's KS: %+v, want D of about 0.2 and a p-value below the threshold", ks)
	}

	q = sendRows(t, m, r, 20, func(row []float32) { row[1] = row[0] })
	if len(q.Drift.Drifted) == 0 {
		t.Fatal("class frequencies changed: no drift flagged")
	}
	for _, d := range q.Drift.Drifted {
		if !strings.HasPrefix(d, "output/") {
			t.Errorf("features 0 and 1 correlated, marginals unchanged: input %s flagged", d)
		}
	}
	if !slices.Contains(q.Drift.Drifted, "output/probabilities/argmax") {
		t.Errorf("class frequencies changed: drifted %v, want the argmax among them", q.Drift.Drifted)
	}
}

func score(t *testing.T, r *drift.Report, tensorName, feature, test string) drift.Score {
	t.Helper()
	for _, s := range r.Scores {
		if s.Tensor == tensorName && s.Feature == feature && s.Test == test {
			return s
		}
	}
	t.Fatalf("no %s score for %s/%s in %+v", test, tensorName, feature, r.Scores)
	return drift.Score{}
}

// The monitor's sizes are bounded at load: monitor.queue of a billion made
// a channel of ~96 GB and ended the process (a running server's too, on an
// admin load); now the load fails naming the field.
func TestMonitorSizesAreBounded(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "tabular.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mc   MonitorConfig
		want string
	}{
		{MonitorConfig{Sample: 0.1, Queue: 1_000_000_000}, "monitor.queue: 1000000000, want at most 65536"},
		{MonitorConfig{Sample: 0.1, Keep: 1 << 40}, "monitor.keep"},
		{MonitorConfig{Sample: 0.1, Samples: ReviewConfig{PerWindow: 1 << 30}}, "monitor.samples.per_window"},
	} {
		_, err := LoadModel("tabular", 1, data, Config{Isolation: IsolationNone, Monitor: c.mc}, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.mc, err, c.want)
		}
	}
}
