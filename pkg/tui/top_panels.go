package tui

// The dashboard's panels: models, the latency budget, rollouts, one
// model version's detail, and the plain view.

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/profile"
)

func (m *Top) modelsPanel(w, h int) []string {
	cols := m.columns(w)
	rows := m.rows()
	var header []string
	for _, c := range cols {
		header = append(header, cell(c.title, c.width, c.left))
	}
	out := []string{"", headerStyle.Render(" " + strings.Join(header, " "))}

	summary := m.summary(w)
	room := max(h-len(out)-len(summary)-1, 1)
	first := 0
	i := slices.IndexFunc(rows, func(r monitor.Row) bool { return r.Key == m.selected })
	if i >= room {
		first = i - room + 1
	}
	for j := first; j < len(rows) && j < first+room; j++ {
		r := rows[j]
		var cells []string
		for _, c := range cols {
			cells = append(cells, cell(c.value(r), c.width, c.left))
		}
		line := " " + strings.Join(cells, " ")
		if r.Key == m.selected && !m.plain {
			line = selectedStyle.Render(">" + line[1:])
		} else if !r.Ready {
			line = faintStyle.Render(line)
		}
		out = append(out, line)
	}
	if hidden := len(rows) - room; hidden > 0 {
		out = append(out, faintStyle.Render(fmt.Sprintf(" … %d more", hidden)))
	}
	return append(append(out, ""), summary...)
}

// summary is the selected row's trend, budget and rollout, under the table.
func (m *Top) summary(w int) []string {
	r, ok := m.selectedRow()
	if !ok {
		return nil
	}
	half := max((w-44)/2, 8)
	out := []string{
		fmt.Sprintf(" %s  req/s %s %-7s  p99 %s %s",
			headerStyle.Render(truncate(r.Key.String(), 12)), sparkline(rates(r.Trend), half), num(r.Rate), sparkline(p99s(r.Trend), half), dur(r.P99)),
		" budget " + m.budgetLine(r, w-10),
	}
	if r.Generator {
		out = append(out, " tokens "+truncate(genLine(r), w-9))
	}
	if ro, ok := m.frame.Rollouts[r.Model]; ok {
		out = append(out, " rollout "+truncate(rolloutLine(ro.State), w-10))
	}
	return out
}

// genLine gives a text generator's figures.
func genLine(r monitor.Row) string {
	return fmt.Sprintf("TTFT p50 %s p99 %s · ITL p50 %s · %s out/s · running %s, waiting %s · KV %s MiB",
		dur(r.TTFT50), dur(r.TTFT99), dur(r.ITL50), num(r.TokenRate), num(r.Running), num(r.Waiting), num(r.KVBytes/(1<<20)))
}

// budgetLine is a stacked bar of the mean phase times, then their values:
// named where there is room, else by the bar's glyphs.
func (m *Top) budgetLine(r monitor.Row, w int) string {
	var secs []float64
	var long, short []string
	for _, p := range monitor.BudgetPhases {
		secs = append(secs, r.Budget[p])
		if !math.IsNaN(r.Budget[p]) {
			look := phaseLook[p]
			long = append(long, fmt.Sprintf("%s %s", p, dur(r.Budget[p])))
			short = append(short, look.colour.Render(look.glyph)+dur(r.Budget[p]))
		}
	}
	if len(long) == 0 {
		return stackedBar(monitor.BudgetPhases, secs, max(w-26, 10)) + " " + faintStyle.Render("no requests in the window")
	}
	text := strings.Join(long, " · ")
	if w-lipgloss.Width(text) < 30 {
		text = strings.Join(short, " ")
	}
	return stackedBar(monitor.BudgetPhases, secs, max(w-lipgloss.Width(text)-1, 10)) + " " + text
}

// budgetPanel draws every version's budget on one scale, so the bars'
// lengths compare their mean handling times.
func (m *Top) budgetPanel(w, h int) []string {
	rows := m.rows()
	longest := 0.0
	for _, r := range rows {
		longest = max(longest, budgetTotal(r))
	}
	const text = 30 // room for the values after the bar
	scale := max(w-19-text, 10)
	out := []string{"", " " + legend(monitor.BudgetPhases) + faintStyle.Render("  (one scale; longest "+dur(longest)+")")}
	for _, r := range rows {
		var secs []float64
		var vals []string
		for _, p := range monitor.BudgetPhases {
			secs = append(secs, r.Budget[p])
			if !math.IsNaN(r.Budget[p]) && (p != profile.Admission || r.Budget[p] > 0) {
				look := phaseLook[p]
				vals = append(vals, look.colour.Render(look.glyph)+dur(r.Budget[p]))
			}
		}
		bar := 0
		if longest > 0 {
			bar = max(int(math.Round(float64(scale)*budgetTotal(r)/longest)), 1)
		}
		line := " " + cell(truncate(r.Key.String(), 16), 16, true) + " " + stackedBar(monitor.BudgetPhases, secs, bar) +
			" " + strings.Join(vals, " ")
		if r.Key == m.selected && !m.plain {
			line = ">" + line[1:]
		}
		out = append(out, line)
	}
	return out
}

// plainView is every panel at once, for snapshots: the table, the
// budgets, the rollouts, and quality where a version is monitored.
func (m *Top) plainView(w int) []string {
	var out []string
	for server, err := range m.frame.Errors {
		out = append(out, fmt.Sprintf("%s: %v", server, err))
	}
	if len(m.rows()) == 0 {
		return append(out, "", "  no models loaded")
	}
	table := m.modelsPanel(w, 1<<16)
	// The table, without the selected row's summary under it.
	if i := slices.Index(table[1:], ""); i >= 0 {
		table = table[:i+1]
	}
	out = append(out, table...)
	for _, r := range m.rows() {
		if r.Generator {
			out = append(out, " "+truncate(r.Key.String()+" tokens: "+genLine(r), w-1))
		}
	}
	out = append(out, m.budgetPanel(w, 1<<16)...)
	if len(m.frame.Rollouts) > 0 || len(m.frame.RolloutErrors) > 0 {
		out = append(out, m.rolloutPanel(w)...)
	}
	if slices.ContainsFunc(m.rows(), func(r monitor.Row) bool { return r.Quality != nil }) {
		out = append(out, m.qualityPanel()...)
	}
	return out
}

func budgetTotal(r monitor.Row) float64 {
	t := 0.0
	for _, p := range monitor.BudgetPhases {
		if !math.IsNaN(r.Budget[p]) {
			t += r.Budget[p]
		}
	}
	return t
}

func (m *Top) rolloutPanel(w int) []string {
	out := []string{""}
	for _, server := range slices.Sorted(maps.Keys(m.frame.RolloutErrors)) {
		line := fmt.Sprintf("rollouts of %s unread: %v", server, m.frame.RolloutErrors[server])
		out = append(out, " "+warnStyle.Render(truncate(line, w-1)))
	}
	seen := map[string]bool{}
	for _, r := range m.rows() {
		if seen[r.Model] {
			continue
		}
		seen[r.Model] = true
		ro, ok := m.frame.Rollouts[r.Model]
		if !ok {
			if m.frame.RolloutErrors[r.Key.Server] == nil { // unread is not none
				out = append(out, " "+cell(r.Model, 16, true)+" "+faintStyle.Render("no rollout"))
			}
			continue
		}
		out = append(out, " "+cell(r.Model, 16, true)+" "+truncate(rolloutLine(ro.State), w-19))
		if last, ok := ro.LastAnalysis(); ok {
			out = append(out, " "+strings.Repeat(" ", 17)+faintStyle.Render(truncate(analysisLine(last), w-19)))
		}
	}
	return out
}

// rolloutLine says where a rollout stands: strategy, phase, step and the
// traffic split, and the last analysis verdict.
func rolloutLine(s deploy.State) string {
	phase := s.Phase
	switch phase {
	case deploy.RolledBack, deploy.Aborted:
		phase = badStyle.Render(phase)
	case deploy.Promoted, deploy.Completed:
		phase = goodStyle.Render(phase)
	case deploy.Paused:
		phase = warnStyle.Render(phase)
	}
	line := fmt.Sprintf("%s %s step %d/%d · v%d %s · v%d %s", s.Spec.Strategy, phase, s.Step+1, len(s.Spec.Steps),
		s.Spec.Stable, pct((100-s.Percent())/100), s.Spec.Candidate, pct(s.Percent()/100))
	if s.Spec.Strategy == deploy.Mirror {
		line = fmt.Sprintf("%s %s · v%d serves · v%d mirrors %s", s.Spec.Strategy, phase, s.Spec.Stable, s.Spec.Candidate, pct(s.Spec.ShadowFraction))
	}
	if last, ok := s.LastAnalysis(); ok {
		line += " · last " + verdict(last.Kind)
	}
	return line
}

func verdict(kind string) string {
	switch kind {
	case deploy.Pass:
		return goodStyle.Render(kind)
	case deploy.Fail:
		return badStyle.Render(kind)
	}
	return warnStyle.Render(kind)
}

func analysisLine(e deploy.Event) string {
	line := fmt.Sprintf("%s at %s: %s", e.Kind, e.Time.Format("15:04:05"), e.Reason)
	for _, k := range slices.Sorted(maps.Keys(e.Figures)) {
		line += fmt.Sprintf(" · %s %.3g", k, e.Figures[k])
	}
	return line
}

func (m *Top) detailView(w, h int) []string {
	r, ok := m.selectedRow()
	if !ok {
		return []string{"", faintStyle.Render("  the model version is gone")}
	}
	errs := "none"
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, r.Errors[k]))
		}
		errs = strings.Join(parts, ", ")
	}
	obj := m.o.Objectives
	spark := max(w-24, 10)
	out := []string{
		"",
		" " + headerStyle.Render(r.Key.String()) + faintStyle.Render(" on "+r.Server),
		"",
		fmt.Sprintf(" requests/s %-8s errors %s (%s)", num(r.Rate), judge(obj, "errors", r.ErrorRate).Render(pct(r.ErrorRate)), errs),
		fmt.Sprintf(" p50 %s  p95 %s  p99 %s  over the last %v",
			judge(obj, "p50", r.P50).Render(dur(r.P50)), judge(obj, "p95", r.P95).Render(dur(r.P95)), judge(obj, "p99", r.P99).Render(dur(r.P99)), r.Window.Round(100*time.Millisecond)),
		fmt.Sprintf(" queue %s (oldest %s)  in flight %s  mean batch %s", num(r.Queue), dur(r.OldestAge), num(r.Inflight), batch(r.MeanBatch)),
		fmt.Sprintf(" cache hits %s  cost per 1,000 requests %s", pct(r.CacheHitRate), usd(r.CostPer1k)),
		"",
		fmt.Sprintf(" %-10s %s %s", "req/s", sparkline(rates(r.Trend), spark), num(r.Rate)),
		fmt.Sprintf(" %-10s %s %s", "p99", sparkline(p99s(r.Trend), spark), dur(r.P99)),
		"",
		" budget     " + m.budgetLine(r, w-13),
		"            " + legend(monitor.BudgetPhases),
	}
	if r.Generator {
		out = append(out, " tokens     "+genLine(r))
	}
	if line := memoryLine(r, m.frame.At); line != "" {
		out = append(out, " model     "+line)
	}
	if r.Quality != nil {
		out = append(out, " quality    "+qualityLine(r.Quality))
	}
	if ro, ok := m.frame.Rollouts[r.Model]; ok {
		out = append(out, "", " rollout    "+rolloutLine(ro.State))
		history := ro.History
		room := max(h-len(out)-1, 0)
		if len(history) > room {
			history = history[len(history)-room:]
		}
		for _, e := range history {
			out = append(out, faintStyle.Render(strings.TrimRight(fmt.Sprintf("   %s step %d %s %s", e.Time.Format("15:04:05"), e.Step+1, e.Kind, e.Reason), " ")))
		}
	}
	return out
}
