package loadgen

import (
	"encoding/json"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The models of one run pool exactly from their reports' histograms, after
// the reports' trip through JSON: one model's tail counts within the
// pool as within the requests it was part of.
func TestPooledLatencyMergesModels(t *testing.T) {
	rec := NewRecorder()
	t0 := time.Now()
	send := func(model string, n int, took time.Duration) {
		for range n {
			res := &Result{Intended: t0, Start: t0, End: t0.Add(took), Model: model}
			res.Finish()
			rec.Record(res)
		}
	}
	send("fast", 1000, time.Millisecond)
	send("slow", 20, 50*time.Millisecond)
	send("other", 500, time.Second)
	var reports []ModelReport
	b, err := json.Marshal(modelReports(rec))
	if err == nil {
		err = json.Unmarshal(b, &reports)
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := PooledLatency(reports, "fast", "slow")
	if err != nil {
		t.Fatal(err)
	}
	// 1,020 requests: the 1,010th fastest is one of slow's 20.
	if p.P50 < 0.99 || p.P50 > 1.01 || p.P99 < 49.5 || p.P99 > 50.5 || p.Max < 49.5 || p.Max > 50.5 {
		t.Errorf("pooled fast and slow: p50 %.2f, p99 %.2f, max %.2f ms; want 1, 50, 50", p.P50, p.P99, p.Max)
	}
	if alone, _ := PooledLatency(reports, "fast"); alone.P99 > 1.01 {
		t.Errorf("fast alone: p99 %.2f ms, want 1", alone.P99)
	}
	if _, err := PooledLatency(reports, "fast", "missing"); err == nil {
		t.Error("a model with no report pooled without an error")
	}
	if _, err := PooledLatency(reports, "fast", "fast"); err == nil {
		t.Error("a model named twice pooled without an error")
	}
	if _, err := PooledLatency(nil, "fast"); err == nil {
		t.Error("a report of one model pooled without an error")
	}
}

// Histograms of different ranges pool whatever their order: a narrow one
// first loses none of a wider one's values.
func TestPooledLatencySpansEveryRange(t *testing.T) {
	report := func(name string, highest, value int64) ModelReport {
		h := hdr.New(1, highest, 2)
		if err := h.RecordValue(value); err != nil {
			t.Fatal(err)
		}
		enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		return ModelReport{Model: name, Requests: 1, Histogram: string(enc)}
	}
	reports := []ModelReport{report("narrow", 1000, 500), report("wide", 10_000_000, 5_000_000)}
	for _, order := range [][]string{{"narrow", "wide"}, {"wide", "narrow"}} {
		p, err := PooledLatency(reports, order...)
		if err != nil {
			t.Fatal(err)
		}
		if p.Max < 4900 || p.Max > 5100 {
			t.Errorf("pooled %v: max %.1f ms, want 5000", order, p.Max)
		}
	}
}
