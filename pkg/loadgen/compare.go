package loadgen

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
)

// WriteCSV writes one row per report (a run, or each step of a sweep):
// rates, counts, latency percentiles and each phase's mean, in
// milliseconds.
func WriteCSV(w io.Writer, reports []Report) error {
	cw := csv.NewWriter(w)
	head := []string{"target_rate", "achieved_rate", "requests", "ok", "error_rate", "late_sends",
		"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms", "mean_ms"}
	if len(reports) > 0 {
		for _, p := range reports[0].Phases {
			head = append(head, p.Phase+"_mean_ms")
		}
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range reports {
		l := r.Latency
		row := []string{f(r.TargetRate), f(r.AchievedRate), strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.OK, 10),
			f(r.ErrorRate), strconv.FormatInt(r.Late, 10), f(l.P50), f(l.P90), f(l.P95), f(l.P99), f(l.P999), f(l.Max), f(l.Mean)}
		for _, p := range r.Phases {
			row = append(row, f(p.Mean))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Delta is one figure of two runs side by side.
type Delta struct {
	Metric string
	A, B   float64
	// Better says which way is an improvement: +1 higher, -1 lower.
	Better int
	// Noise is how large a change the runs' own second-to-second
	// wandering can make, as a fraction of A (see noise); 0 when not
	// known.
	Noise float64
}

// Change returns B relative to A, as a fraction (0.1 = 10% more).
func (d Delta) Change() float64 {
	if d.A == 0 {
		return 0
	}
	return (d.B - d.A) / d.A
}

// Compare lines up two runs' figures: rates, errors, latency percentiles
// and each phase's mean.
func Compare(a, b Report) []Delta {
	answered := func(s SecondReport) float64 { return float64(s.Requests - s.Errors) }
	out := []Delta{
		{"achieved rate /s", a.AchievedRate, b.AchievedRate, +1, noise(a, b, answered)},
		{"error rate", a.ErrorRate, b.ErrorRate, -1, 0},
		{"p50 ms", a.Latency.P50, b.Latency.P50, -1, noise(a, b, func(s SecondReport) float64 { return s.P50 })},
		{"p90 ms", a.Latency.P90, b.Latency.P90, -1, 0},
		{"p95 ms", a.Latency.P95, b.Latency.P95, -1, 0},
		{"p99 ms", a.Latency.P99, b.Latency.P99, -1, noise(a, b, func(s SecondReport) float64 { return s.P99 })},
		{"p99.9 ms", a.Latency.P999, b.Latency.P999, -1, 0},
		{"max ms", a.Latency.Max, b.Latency.Max, -1, 0},
		{"mean ms", a.Latency.Mean, b.Latency.Mean, -1, 0},
	}
	bm := map[string]float64{}
	for _, p := range b.Phases {
		bm[p.Phase] = p.Mean
	}
	for _, p := range a.Phases {
		out = append(out, Delta{p.Phase + " mean ms", p.Mean, bm[p.Phase], -1, 0})
	}
	return out
}

// WriteComparison writes Compare's figures as a table: a change is
// called better or worse only beyond 5% and beyond its noise, where the
// noise is known; within the noise it says so.
func WriteComparison(w io.Writer, nameA, nameB string, deltas []Delta) error {
	unknown := false
	defer func() {
		if unknown {
			fmt.Fprintf(w, "noise: how far the runs' own second-to-second wandering can move a figure (95%%); - where a run has under %d seconds of answers to tell\n", minNoiseSeconds)
		}
	}()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\tchange\tnoise\t\n", nameA, nameB)
	for _, d := range deltas {
		mark, bar := "", 0.05
		noise := "-"
		unknown = unknown || d.Noise == 0
		if d.Noise > 0 {
			noise = fmt.Sprintf("±%.1f%%", 100*d.Noise)
			bar = max(bar, d.Noise)
		}
		switch c := d.Change() * float64(d.Better); {
		case c > bar:
			mark = " better"
		case c < -bar:
			mark = " worse"
		case d.Noise > 0 && math.Abs(c) > 0.05:
			mark = " within noise"
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%+.1f%%%s\t%s\t\n", d.Metric, d.A, d.B, 100*d.Change(), mark, noise)
	}
	return tw.Flush()
}

// SettingsDiff lists the settings two runs differ in, but for those
// named in ignore, as "name a -> b", sorted: a comparison of runs of
// different loads says as much about the loads as about the servers.
func SettingsDiff(a, b Report, ignore ...string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a.Settings)) {
		if slices.Contains(ignore, k) {
			continue
		}
		if a.Settings[k] != b.Settings[k] {
			out = append(out, fmt.Sprintf("%s %s -> %s", k, a.Settings[k], cmp.Or(b.Settings[k], "(unset)")))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.Settings)) {
		if _, ok := a.Settings[k]; !ok && !slices.Contains(ignore, k) {
			out = append(out, fmt.Sprintf("%s (unset) -> %s", k, b.Settings[k]))
		}
	}
	return out
}
