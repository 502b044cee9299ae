package loadgen

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// ModelReport is one model's part of a run over several models.
type ModelReport struct {
	Model    string `json:"model"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// Share is the model's part of the run's requests.
	Share float64 `json:"share"`
	// Latency is from intended send, over its successes and timeouts
	// (see Recorder.Total), to 2 significant digits.
	Latency Percentiles `json:"latency"`
	// Histogram is Latency's histogram, in microseconds, in HdrHistogram's
	// compressed V2 encoding, base64 (the form HdrHistogram's log files
	// hold): runs, and models of one run, merge exactly (PooledLatency).
	Histogram string `json:"histogram,omitempty"`
}

// PooledLatency returns the latency percentiles of the named models'
// requests together, from their reports' histograms. A name that no
// report has, or one named twice, is an error; the pool spans every
// histogram's range, so that none loses a value to another's.
func PooledLatency(models []ModelReport, names ...string) (Percentiles, error) {
	if len(models) == 0 {
		return Percentiles{}, errors.New("no per-model figures: the run was of one model, whose latency is the report's own")
	}
	hists := make([]*hdr.Histogram, 0, len(names))
	for i, name := range names {
		if slices.Contains(names[:i], name) {
			return Percentiles{}, fmt.Errorf("model %q named twice", name)
		}
		j := slices.IndexFunc(models, func(m ModelReport) bool { return m.Model == name })
		if j < 0 {
			return Percentiles{}, fmt.Errorf("no report of model %q", name)
		}
		h, err := hdr.Decode([]byte(models[j].Histogram))
		if err != nil {
			return Percentiles{}, fmt.Errorf("model %q: histogram: %w", name, err)
		}
		hists = append(hists, h)
	}
	if len(hists) == 0 {
		return Percentiles{}, errors.New("no model to pool")
	}
	lo, hi, digits := hists[0].LowestTrackableValue(), hists[0].HighestTrackableValue(), hists[0].SignificantFigures()
	for _, h := range hists[1:] {
		lo, hi, digits = min(lo, h.LowestTrackableValue()), max(hi, h.HighestTrackableValue()), max(digits, h.SignificantFigures())
	}
	pooled := hdr.New(max(lo, 1), hi, int(digits))
	for _, h := range hists {
		if dropped := pooled.Merge(h); dropped > 0 {
			return Percentiles{}, fmt.Errorf("%d values out of the pool's range", dropped)
		}
	}
	return percentiles(pooled), nil
}

// modelReports returns each model's figures, the most requested first
// (ties by name); nil for a run of one model.
func modelReports(rec *Recorder) []ModelReport {
	if len(rec.Models) == 0 {
		return nil
	}
	all := rec.Count()
	out := make([]ModelReport, 0, len(rec.Models))
	for name, m := range rec.Models {
		mr := ModelReport{Model: name, Requests: m.Requests, Errors: m.Errors, Latency: percentiles(m.Latency)}
		if enc, err := m.Latency.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
			mr.Histogram = string(enc)
		}
		if all > 0 {
			mr.Share = float64(m.Requests) / float64(all)
		}
		out = append(out, mr)
	}
	slices.SortFunc(out, func(a, b ModelReport) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), cmp.Compare(a.Model, b.Model))
	})
	return out
}

// modelsShown is how many models the text report lists; -o json has all.
const modelsShown = 10

// modelsTable is the text report's table of the busiest models.
func (r Report) modelsTable() string {
	t := newTable(7, "model", "requests", "share", "errors", "p50", "p99", "max", "mean")
	for _, m := range r.Models[:min(modelsShown, len(r.Models))] {
		t.Row(m.Model, fmt.Sprint(m.Requests), fmt.Sprintf("%.1f%%", 100*m.Share), fmt.Sprint(m.Errors),
			ms(m.Latency.P50), ms(m.Latency.P99), ms(m.Latency.Max), ms(m.Latency.Mean))
	}
	out := t.String()
	if rest := len(r.Models) - modelsShown; rest > 0 {
		var n, errs int64
		for _, m := range r.Models[modelsShown:] {
			n, errs = n+m.Requests, errs+m.Errors
		}
		out += "\n" + faintStyle.Render(fmt.Sprintf("and %d more models: %d requests, %d errors (-o json lists each)", rest, n, errs))
	}
	return out
}
