package tui

import (
	"fmt"
	"strings"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/monitor"
)

// qualityPanel is each model version's quality monitoring: requests
// sampled per second and dropped in the window, whether the last closed
// window drifted from the baseline, and under each compared version the
// largest score of each drift test with the feature that scored it.
func (m *Top) qualityPanel() []string {
	out := []string{"", headerStyle.Render(" " + cell("MODEL", 20, true) + " " + cell("SAMPLED/s", 9, false) + " " + cell("DROPPED", 7, false) + "  DRIFT")}
	for _, r := range m.rows() {
		name := cell(r.Key.String(), 20, true)
		q := r.Quality
		if q == nil {
			out = append(out, " "+name+" "+faintStyle.Render("not monitored (monitor.sample in its config.yaml)"))
			continue
		}
		line := " " + name + " " + cell(num(q.SampleRate), 9, false) + " " + cell(num(q.Dropped), 7, false) + "  " + driftState(q)
		if r.Key == m.selected && !m.plain {
			line = ">" + line[1:]
		}
		out = append(out, line)
		for _, test := range monitor.QualityTests {
			s, ok := q.Worst[test]
			if !ok {
				continue
			}
			text := fmt.Sprintf("%-6s %8s  %s", test, score(s.Value), s.Where())
			if test == drift.TestPSI && s.Value > drift.PSIAlarm {
				text = badStyle.Render(text)
			} else {
				text = faintStyle.Render(text)
			}
			out = append(out, strings.Repeat(" ", 22)+text) // Render cuts lines to the width
		}
	}
	return out
}

// driftState says where a monitored version stands against its baseline.
func driftState(q *monitor.QualityFigures) string {
	switch {
	case !q.Compared:
		return faintStyle.Render("no baseline yet")
	case q.Alarm:
		return badStyle.Render("DRIFT")
	}
	return goodStyle.Render("ok")
}

// qualityLine is driftState with the largest PSI, for the detail view.
func qualityLine(q *monitor.QualityFigures) string {
	if q == nil {
		return faintStyle.Render("not monitored")
	}
	line := fmt.Sprintf("%s sampled/s · %s", num(q.SampleRate), driftState(q))
	if s, ok := q.Worst[drift.TestPSI]; ok {
		line += fmt.Sprintf(" · psi %s %s", score(s.Value), s.Where())
	}
	return line
}

// score formats a drift score: three significant digits, large ones
// (a z of a constant that moved) as "inf".
func score(v float64) string {
	if v > 1e9 {
		return "inf"
	}
	return fmt.Sprintf("%.3g", v)
}
