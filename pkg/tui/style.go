// Package tui draws the live terminal dashboards: `infer top`, watching
// running servers, and `infer bench --tui`, watching a load run. Both are
// Bubble Tea models whose views fall back to plain text where there is no
// terminal, and whose layout holds down to 80x24.
package tui

import (
	"fmt"
	"math"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/profile"
)

// Colours: the ANSI 16, so that every terminal shows them as its theme
// means them.
var (
	colourGood  = lipgloss.Green
	colourWarn  = lipgloss.Yellow
	colourBad   = lipgloss.Red
	colourFaint = lipgloss.BrightBlack
	colourTitle = lipgloss.Cyan

	titleStyle    = lipgloss.NewStyle().Bold(true).Foreground(colourTitle)
	headerStyle   = lipgloss.NewStyle().Bold(true)
	faintStyle    = lipgloss.NewStyle().Foreground(colourFaint)
	selectedStyle = lipgloss.NewStyle().Reverse(true)
	goodStyle     = lipgloss.NewStyle().Foreground(colourGood)
	warnStyle     = lipgloss.NewStyle().Foreground(colourWarn)
	badStyle      = lipgloss.NewStyle().Foreground(colourBad)
)

// Phase glyphs and colours of the latency-budget bar: distinct fills, so
// the bar reads in plain text too.
var phaseLook = map[profile.Phase]struct {
	glyph  string
	colour lipgloss.Style
}{
	profile.Admission:   {"▗", lipgloss.NewStyle().Foreground(lipgloss.BrightYellow)},
	profile.Queue:       {"▒", lipgloss.NewStyle().Foreground(lipgloss.Yellow)},
	profile.Cache:       {"▘", lipgloss.NewStyle().Foreground(lipgloss.BrightMagenta)},
	profile.Preprocess:  {"░", lipgloss.NewStyle().Foreground(lipgloss.Magenta)},
	profile.Infer:       {"█", lipgloss.NewStyle().Foreground(lipgloss.Blue)},
	profile.Postprocess: {"▓", lipgloss.NewStyle().Foreground(lipgloss.Cyan)},
	profile.Connect:     {"▚", lipgloss.NewStyle().Foreground(lipgloss.BrightRed)},
	profile.Network:     {"▁", lipgloss.NewStyle().Foreground(lipgloss.BrightBlack)},
	profile.Write:       {"▞", lipgloss.NewStyle().Foreground(lipgloss.BrightGreen)},
	profile.Broker:      {"▙", lipgloss.NewStyle().Foreground(lipgloss.Green)},
	profile.Delay:       {"▖", lipgloss.NewStyle().Foreground(lipgloss.Red)},
}

// dur formats seconds as a short duration: 850µs, 1.25ms, 2.1s; "-" for
// NaN (nothing to tell).
func dur(s float64) string {
	switch {
	case math.IsNaN(s) || s < 0:
		return "-"
	case s < 1e-3:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 10e-3:
		return fmt.Sprintf("%.2fms", s*1e3)
	case s < 100e-3:
		return fmt.Sprintf("%.1fms", s*1e3)
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}

// num formats a rate or count compactly; "-" for NaN.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// batch formats a mean batch size; "-" for NaN.
func batch(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// pct formats a share as a percentage; "-" for NaN.
func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v > 0 && v < 0.001 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// usd formats a cost in US dollars; "-" for NaN.
func usd(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1:
		return fmt.Sprintf("$%.2f", v)
	case v >= 0.01:
		return fmt.Sprintf("$%.3f", v)
	case v <= 0:
		return "$0"
	}
	// Two significant digits, in fixed notation.
	return fmt.Sprintf("$%.*f", int(-math.Floor(math.Log10(v)))+1, v)
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values, scaled to their maximum; NaN
// draws a blank.
func sparkline(values []float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	top := 0.0
	for _, v := range values {
		if !math.IsNaN(v) {
			top = max(top, v)
		}
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(values)))
	for _, v := range values {
		switch {
		case math.IsNaN(v):
			b.WriteByte(' ')
		case top <= 0:
			b.WriteRune(sparkRunes[0])
		default:
			b.WriteRune(sparkRunes[min(int(v/top*float64(len(sparkRunes))), len(sparkRunes)-1)])
		}
	}
	return b.String()
}

// stackedBar draws shares of width cells, one glyph per phase, each
// phase getting at least one cell when it took any time at all.
func stackedBar(phases []profile.Phase, seconds []float64, width int) string {
	total := 0.0
	for _, s := range seconds {
		if !math.IsNaN(s) && s > 0 {
			total += s
		}
	}
	if total <= 0 || width <= 0 {
		return faintStyle.Render(strings.Repeat("·", max(width, 0)))
	}
	cells := make([]int, len(seconds))
	used := 0
	for i, s := range seconds {
		if math.IsNaN(s) || s <= 0 {
			continue
		}
		cells[i] = max(1, int(math.Round(s/total*float64(width))))
		used += cells[i]
	}
	// Trim or pad the largest segment so the bar is exactly width.
	largest := 0
	for i := range cells {
		if cells[i] > cells[largest] {
			largest = i
		}
	}
	cells[largest] = max(cells[largest]+width-used, 0)
	var b strings.Builder
	for i, p := range phases {
		if cells[i] > 0 {
			look := phaseLook[p]
			b.WriteString(look.colour.Render(strings.Repeat(look.glyph, cells[i])))
		}
	}
	return b.String()
}

// legend names the bar's glyphs.
func legend(phases []profile.Phase) string {
	var parts []string
	for _, p := range phases {
		look := phaseLook[p]
		parts = append(parts, look.colour.Render(look.glyph)+" "+p.String())
	}
	return strings.Join(parts, "  ")
}

// judge returns the style of a latency (seconds) or error rate measured
// against objectives: red at or over its limit, yellow past 80% of it,
// green under; no colour when no objective covers the metric.
func judge(objectives []loadgen.Objective, metric string, v float64) lipgloss.Style {
	if math.IsNaN(v) {
		return lipgloss.NewStyle()
	}
	for _, o := range objectives {
		if o.Metric != metric {
			continue
		}
		limit := o.Limit
		if metric != "errors" {
			limit /= 1e3 // objectives hold milliseconds; v is in seconds
		}
		switch {
		case v >= limit:
			return badStyle
		case v >= 0.8*limit:
			return warnStyle
		}
		return goodStyle
	}
	return lipgloss.NewStyle()
}

// cell pads text to width, right-aligned (left for the first columns).
func cell(s string, width int, left bool) string {
	w := lipgloss.Width(s)
	if w > width {
		return truncate(s, width)
	}
	pad := strings.Repeat(" ", width-w)
	if left {
		return s + pad
	}
	return pad + s
}

// truncate cuts plain text to width, with an ellipsis.
func truncate(s string, width int) string {
	if lipgloss.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
