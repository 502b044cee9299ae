package loadgen

import (
	"cmp"
	"fmt"
	"slices"
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
