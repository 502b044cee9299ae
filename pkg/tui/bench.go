package tui

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/charmbracelet/x/ansi"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/profile"
)

// BenchOptions describe the run a Bench dashboard watches.
type BenchOptions struct {
	// Target and Load describe the run, as the report's first lines do.
	Target, Load string
	// Duration and Requests bound the run (either may be 0); Warmup
	// precedes it.
	Duration, Warmup time.Duration
	Requests         uint64
	// Objectives colour the latencies and the error rate.
	Objectives []loadgen.Objective
	// USDPerHour prices the server, for the cost line.
	USDPerHour float64
}

// BenchProgress is a run's progress, sent to the dashboard as it goes.
type BenchProgress loadgen.Progress

// BenchDone ends the dashboard: the run is over.
type BenchDone struct{}

// Bench is the `infer bench --tui` model.
type Bench struct {
	o             BenchOptions
	last          loadgen.Progress
	have          bool
	rates         []float64 // answers per second, one a progress
	width, height int
	stopped       bool
	help          help.Model
	quit          key.Binding
}

// NewBench returns the dashboard of a run about to start.
func NewBench(o BenchOptions) *Bench {
	return &Bench{o: o, width: 80, height: 24, help: help.New(),
		quit: key.NewBinding(key.WithKeys("q", "ctrl+c", "esc"), key.WithHelp("q", "stop the run and report"))}
}

// Stopped reports whether the user stopped the run.
func (m *Bench) Stopped() bool { return m.stopped }

// Init does nothing: progress arrives by message.
func (m *Bench) Init() tea.Cmd { return nil }

// Update takes progress, resizes and the stop key.
func (m *Bench) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case BenchProgress:
		p := loadgen.Progress(msg)
		if m.have && p.Elapsed > m.last.Elapsed {
			answered := float64(p.OK + p.Failed - m.last.OK - m.last.Failed)
			m.rates = append(m.rates, answered/(p.Elapsed-m.last.Elapsed).Seconds())
		}
		m.last, m.have = p, true
	case BenchDone:
		return m, tea.Quit
	case tea.KeyPressMsg:
		if key.Matches(msg, m.quit) {
			m.stopped = true
			return m, tea.Quit
		}
	}
	return m, nil
}

// View draws the run.
func (m *Bench) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "infer bench"
	return v
}

// Plain renders the run as text without colour, width columns wide: the
// snapshot printed where there is no terminal.
func (m *Bench) Plain(width int) string {
	w, h := m.width, m.height
	m.width, m.height = width, 0
	defer func() { m.width, m.height = w, h }()
	return ansi.Strip(m.Render())
}

// Render returns the dashboard as text, sized to the terminal (to its
// content when the height is 0).
func (m *Bench) Render() string {
	w := max(m.width, 40)
	lines := []string{m.title(w)}
	if !m.have {
		lines = append(lines, "", faintStyle.Render("  starting…"))
	} else {
		lines = append(lines, m.body(w)...)
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			lines[i] = ansi.Truncate(l, w, "")
		}
	}
	if m.height <= 0 {
		return strings.Join(lines, "\n") + "\n"
	}
	if len(lines) > m.height-1 {
		lines = lines[:m.height-1]
	}
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	return strings.Join(append(lines, m.help.ShortHelpView([]key.Binding{m.quit})), "\n")
}

func (m *Bench) title(w int) string {
	left := titleStyle.Render("infer bench") + faintStyle.Render(" · "+m.o.Target)
	right := ""
	if m.have {
		right = fmt.Sprintf("%.1fs", m.last.Elapsed.Seconds())
		if total := m.o.Warmup + m.o.Duration; m.o.Duration > 0 {
			right += fmt.Sprintf(" / %v", total)
		}
	}
	return left + strings.Repeat(" ", max(w-lipgloss.Width(left)-lipgloss.Width(right), 1)) + right
}

// fraction is how far the run is, by time or by requests.
func (m *Bench) fraction() float64 {
	var f float64
	if total := m.o.Warmup + m.o.Duration; m.o.Duration > 0 {
		f = m.last.Elapsed.Seconds() / total.Seconds()
	}
	if m.o.Requests > 0 && m.last.Recorded != nil {
		f = max(f, float64(m.last.Recorded.Count())/float64(m.o.Requests))
	}
	return min(f, 1)
}

const labelWidth = 10

func label(s string) string { return headerStyle.Render(fmt.Sprintf(" %-*s", labelWidth, s)) }

func (m *Bench) body(w int) []string {
	p := m.last
	rec := p.Recorded
	stage := "recording"
	if !p.Recording {
		stage = "warming up"
	}
	barWidth := max(w-24, 10)
	done := int(m.fraction() * float64(barWidth))
	out := []string{
		faintStyle.Render(" " + m.o.Load),
		fmt.Sprintf(" %s%s %3.0f%%  %s", goodStyle.Render(strings.Repeat("█", done)), faintStyle.Render(strings.Repeat("░", barWidth-done)), 100*m.fraction(), stage),
		"",
	}

	// Rates: what the schedule asks, what came back.
	last := math.NaN()
	if n := len(m.rates); n > 0 {
		last = m.rates[n-1]
	}
	rate := label("rate")
	if p.TargetRate > 0 {
		rate += fmt.Sprintf("target %s/s · ", num(p.TargetRate))
	}
	rate += fmt.Sprintf("answered %s/s", num(last))
	if rec != nil && p.Recording {
		if span := p.Elapsed - m.o.Warmup; span > 0 {
			rate += fmt.Sprintf(" · %s/s since recording began", num(float64(rec.Count())/span.Seconds()))
		}
	}
	out = append(out, rate)

	failed := p.Failed
	errs := fmt.Sprintf("sent %d · ok %d · failed %d", p.Sent, p.OK, failed)
	if rec != nil {
		if n := rec.Count(); n > 0 {
			errRate := float64(n-rec.OK) / float64(n)
			errs += " · " + judge(m.o.Objectives, "errors", errRate).Render(pct(errRate)+" of recorded")
			for _, k := range slices.Sorted(maps.Keys(rec.Errors)) {
				errs += fmt.Sprintf(" · %s %d", k, rec.Errors[k])
			}
		}
		if rec.Late > 0 {
			errs += fmt.Sprintf(" · %d late", rec.Late)
		}
	}
	out = append(out, label("requests")+errs)

	if rec == nil || rec.OK == 0 {
		return append(out, label("latency")+faintStyle.Render("no answer recorded yet"))
	}
	q := func(metric string, quantile float64) string {
		v := float64(rec.Total.ValueAtQuantile(quantile)) / 1e6
		return judge(m.o.Objectives, metric, v).Render(dur(v))
	}
	out = append(out, label("latency")+fmt.Sprintf("p50 %s · p95 %s · p99 %s · p99.9 %s · max %s",
		q("p50", 50), q("p95", 95), q("p99", 99), q("p99.9", 99.9), q("max", 100)))
	if g := rec.Gen; g != nil {
		at := func(h *hdr.Histogram, metric string, quantile float64) string {
			v := float64(h.ValueAtQuantile(quantile)) / 1e6
			return judge(m.o.Objectives, metric, v).Render(dur(v))
		}
		tokens := fmt.Sprintf("TTFT p50 %s p99 %s · TPOT p50 %s p99 %s · ITL p99 %s",
			at(g.TTFT, "ttft", 50), at(g.TTFT, "ttft", 99), at(g.TPOT, "tpot", 50), at(g.TPOT, "tpot", 99), at(g.ITL, "itl", 99))
		if span := p.Elapsed - m.o.Warmup; p.Recording && span > 0 {
			tokens += fmt.Sprintf(" · %s tokens/s", num(float64(g.Tokens)/span.Seconds()))
		}
		out = append(out, label("tokens")+tokens)
	}
	if m.o.USDPerHour > 0 && p.Recording {
		if span := p.Elapsed - m.o.Warmup; span > 0 {
			good := float64(rec.OK) / span.Seconds()
			out = append(out, label("cost")+fmt.Sprintf("%s per 1,000 requests at %s/s", usd(1000*profile.Price{USDPerHour: m.o.USDPerHour}.PerRequestAt(good)), num(good)))
		}
	}

	spark := max(w-labelWidth-12, 10)
	var p99s []float64
	for _, s := range rec.Timeline {
		v := math.NaN()
		if s != nil && s.Latency.TotalCount() > 0 {
			v = float64(s.Latency.ValueAtQuantile(99)) / 1e6
		}
		p99s = append(p99s, v)
	}
	if len(p99s) > 1 {
		p99s = p99s[:len(p99s)-1] // the current second is not over
	}
	out = append(out, "",
		label("answers/s")+sparkline(m.rates, spark)+" "+num(last),
		label("p99")+sparkline(p99s, spark)+" "+dur(lastOf(p99s)),
		"")

	var secs []float64
	var vals []string
	for _, ph := range profile.BudgetPhases {
		mean := math.NaN()
		if rec.OK > 0 && rec.PhaseSum[ph] > 0 {
			mean = (rec.PhaseSum[ph] / time.Duration(rec.OK)).Seconds()
		}
		secs = append(secs, mean)
		if !math.IsNaN(mean) {
			look := phaseLook[ph]
			vals = append(vals, look.colour.Render(look.glyph)+" "+ph.String()+" "+dur(mean))
		}
	}
	out = append(out, label("budget")+stackedBar(profile.BudgetPhases, secs, max(w-labelWidth-3, 10)))
	// The values, as many to a line as fit.
	line := strings.Repeat(" ", labelWidth+2)
	for _, v := range vals {
		if lipgloss.Width(line)+lipgloss.Width(v)+3 > w && strings.TrimSpace(line) != "" {
			out = append(out, line)
			line = strings.Repeat(" ", labelWidth+2)
		}
		if strings.TrimSpace(line) != "" {
			line += " · "
		}
		line += v
	}
	return append(out, line, faintStyle.Render(strings.Repeat(" ", labelWidth+2)+"phase means of successful requests; latency from the intended send"))
}

func lastOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return v[len(v)-1]
}
