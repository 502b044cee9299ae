package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/infer-serving/infer/pkg/profile"
)

// Percentiles summarises a latency histogram, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func percentiles(h *hdr.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

// PhaseReport is one part of the latency budget.
type PhaseReport struct {
	Phase string  `json:"phase"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Mean  float64 `json:"mean_ms"`
	// Share is the phase's part of all successful requests' total time.
	Share float64 `json:"share"`
	// Source says where the figures come from: measured by the client,
	// reported by the server per request (Server-Timing, trailers), derived
	// from its statistics (means only), or the remainder.
	Source string `json:"source"`
}

// Phase sources.
const (
	SourceClient    = "client"
	SourceServer    = "server"
	SourceStats     = "stats"
	SourceRemainder = "remainder"
)

func phaseSource(p profile.Phase) string {
	if p == profile.Broker || slices.Contains(profile.ServerPhases, p) {
		return SourceServer
	}
	switch p {
	case profile.Network:
		return SourceRemainder
	}
	return SourceClient
}

// Report is a finished run's figures, for people and for machines.
type Report struct {
	Target    string           `json:"target"`
	Model     string           `json:"model,omitempty"`
	Protocol  string           `json:"protocol"`
	Mode      string           `json:"mode"` // "open" or "closed"
	Requests  int64            `json:"requests"`
	OK        int64            `json:"ok"`
	Errors    map[string]int64 `json:"errors"`
	ErrorRate float64          `json:"error_rate"`
	// ErrorMessages holds, by kind of error, the first message of that
	// kind: for a status, what the server said.
	ErrorMessages map[string]string `json:"error_messages,omitempty"`
	Late          int64             `json:"late_sends"`
	// Unsent counts the requests an open loop never sent: their time came
	// after the end (see Summary.Unsent).
	Unsent     int64   `json:"unsent_requests"`
	Seconds    float64 `json:"seconds"`
	TargetRate float64 `json:"target_rate,omitempty"`
	// AchievedRate counts successful answers per second; SentRate every
	// request that was sent and ended, failures included (a refused
	// connection, a timeout).
	AchievedRate float64 `json:"achieved_rate"`
	SentRate     float64 `json:"sent_rate"`
	// Settings are the run's settings as given and defaulted (the load
	// generator's flags, by name), so that a saved report says how it
	// was made.
	Settings map[string]string `json:"settings,omitempty"`
	// Latency runs from each request's intended send time (corrected for
	// coordinated omission); Service from its actual send. Both hold the
	// successes and the timeouts, each timeout at the time it was given up
	// on (see Recorder.Total).
	Latency        Percentiles   `json:"latency"`
	Service        Percentiles   `json:"service"`
	Phases         []PhaseReport `json:"phases"`
	ServerReported int64         `json:"server_reported"`
	// NewConnections counts the requests that opened a connection, and
	// Connect their DNS and connect time alone.
	NewConnections int64       `json:"new_connections"`
	Connect        Percentiles `json:"connect_new"`
	// Distribution is the latency at percentiles from 0 to 100, for
	// percentile plots; Timeline the run second by second.
	Distribution []Point        `json:"distribution"`
	Timeline     []SecondReport `json:"timeline"`
	// USDPerHour is what the server under test costs by the hour, when
	// given; CostPer1k what 1,000 successful requests cost at the rate
	// the run achieved.
	USDPerHour float64 `json:"usd_per_hour,omitempty"`
	CostPer1k  float64 `json:"cost_per_1k_usd,omitempty"`
	// Retries counts the retries the recorded requests made, and
	// RetriesRefused those the retry budget did not allow (whole run).
	Retries        int64 `json:"retries,omitempty"`
	RetriesRefused int64 `json:"retries_refused,omitempty"`
	// Generation holds a text generation run's figures.
	Generation *GenReport `json:"generation,omitempty"`
	// Models holds each model's figures in a run over several (--models),
	// the most requested first.
	Models []ModelReport `json:"models,omitempty"`
}

// SetPrice prices the run: a server costing usdPerHour, serving the
// successful requests at the rate measured, costs CostPer1k for 1,000.
//
//	cost per 1,000 requests = 1000 × usd_per_hour / (3600 × successful requests per second)
func (r *Report) SetPrice(usdPerHour float64) {
	r.USDPerHour = usdPerHour
	r.CostPer1k = 1000 * profile.Price{USDPerHour: usdPerHour}.PerRequestAt(r.GoodRate())
}

// GoodRate returns the successful requests per second.
func (r Report) GoodRate() float64 { return r.AchievedRate }

// Point is the latency at one percentile.
type Point struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// SecondReport is one second of the run, by intended send time.
type SecondReport struct {
	Second   int     `json:"second"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
}

var distributionAt = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 100}

// NewReport summarises a run.
func NewReport(s *Summary, target, model, protocol string) Report {
	r := Report{Target: target, Model: model, Protocol: protocol, Mode: "closed", Requests: s.Count(), OK: s.OK,
		Errors: maps.Clone(s.Errors), Late: s.Late, Unsent: s.Unsent, Seconds: s.Window.Seconds(), TargetRate: s.TargetRate,
		AchievedRate: s.SuccessRate(), SentRate: s.AnsweredRate(), Latency: percentiles(s.Total), Service: percentiles(s.Service), ServerReported: s.ServerReported,
		NewConnections: s.NewConns, Connect: percentiles(s.Connects), Retries: s.Retries}
	if s.Open {
		r.Mode = "open"
	}
	if s.Gen != nil {
		r.Generation = newGenReport(s.Gen, s.Window.Seconds())
	}
	if r.Requests > 0 {
		r.ErrorRate = float64(r.Requests-r.OK) / float64(r.Requests)
	}
	if len(s.ErrorMessages) > 0 {
		r.ErrorMessages = maps.Clone(s.ErrorMessages)
	}
	if s.Total.TotalCount() > 0 {
		for _, q := range distributionAt {
			r.Distribution = append(r.Distribution, Point{q, float64(s.Total.ValueAtQuantile(q)) / 1000})
		}
	}
	for i, sec := range s.Timeline {
		if sec == nil {
			continue
		}
		r.Timeline = append(r.Timeline, SecondReport{Second: i, Requests: sec.Requests, Errors: sec.Errors,
			P50: float64(sec.Latency.ValueAtQuantile(50)) / 1000, P99: float64(sec.Latency.ValueAtQuantile(99)) / 1000})
	}
	r.Models = modelReports(s.Recorder)
	total := s.PhaseSum[profile.Total]
	for _, p := range profile.BudgetPhases {
		pr := percentiles(s.Phases[p])
		ph := PhaseReport{Phase: p.String(), P50: pr.P50, P95: pr.P95, P99: pr.P99, Mean: pr.Mean, Source: phaseSource(p)}
		if total > 0 {
			ph.Share = float64(s.PhaseSum[p]) / float64(total)
		}
		r.Phases = append(r.Phases, ph)
	}
	return r
}

// Styles of the text report, declared once.
var (
	labelStyle  = lipgloss.NewStyle().Bold(true)
	cellStyle   = lipgloss.NewStyle().Padding(0, 1)
	numberStyle = cellStyle.Align(lipgloss.Right)
	faintStyle  = lipgloss.NewStyle().Faint(true)
	barStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("#4c78a8"))
	badStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("#e45756")).Bold(true)
)

// newTable returns a table whose first column is a label, the next
// figures ones right-aligned figures, and any after them text.
func newTable(figures int, headers ...string) *table.Table {
	return table.New().Border(lipgloss.RoundedBorder()).BorderStyle(faintStyle).Headers(headers...).
		StyleFunc(func(row, col int) lipgloss.Style {
			style := cellStyle
			if col >= 1 && col <= figures {
				style = numberStyle
			}
			if row == table.HeaderRow {
				return style.Bold(true)
			}
			return style
		})
}

// WriteText writes the report for people: a summary and lipgloss tables of
// the latency percentiles and the budget. Colours are dropped when w is
// not a terminal.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%s %s\n", labelStyle.Render(fmt.Sprintf("%-11s", label)), fmt.Sprintf(format, args...))
	}
	target := r.Protocol + " " + r.Target
	if r.Model != "" {
		target += " model " + r.Model
	}
	line("target", "%s", target)
	load := fmt.Sprintf("%s loop, %d requests in %.2fs", r.Mode, r.Requests, r.Seconds)
	if r.Mode == "open" {
		load += fmt.Sprintf(", target %.1f/s", r.TargetRate)
	}
	line("load", "%s, achieved %.1f/s successful (%.1f/s sent and ended, failures included)", load, r.AchievedRate, r.SentRate)
	errs := r.errorLine()
	if len(r.Errors) > 0 {
		errs = badStyle.Render(errs)
	}
	line("errors", "%s", errs)
	for _, kind := range slices.Sorted(maps.Keys(r.ErrorMessages)) {
		line("", "%s: %s", kind, r.ErrorMessages[kind])
	}
	if r.Mode == "open" {
		line("late sends", "%d (more than %v behind schedule)", r.Late, LateAfter)
		if r.Unsent > 0 {
			line("unsent", "%d (the schedule's, whose time came after the end: the server could not keep up)", r.Unsent)
		}
	}
	if r.Retries > 0 || r.RetriesRefused > 0 {
		line("retries", "%d (%d refused by the retry budget)", r.Retries, r.RetriesRefused)
	}
	if r.USDPerHour > 0 {
		if r.CostPer1k > 0 {
			line("cost", "$%.3g per 1,000 requests at %.1f successful/s, at $%g an hour", r.CostPer1k, r.GoodRate(), r.USDPerHour)
		} else {
			line("cost", "none computed: no request succeeded")
		}
	}
	if r.NewConnections > 0 {
		line("connections", "%d opened; connect p50 %sms, p99 %sms, max %sms", r.NewConnections, ms(r.Connect.P50), ms(r.Connect.P99), ms(r.Connect.Max))
	}

	if g := r.Generation; g != nil {
		line("tokens", "%d out, %.1f/s; goodput %.2f requests/s, %.1f tokens/s", g.OutputTokens, g.OutputTokensPerSecond, g.Goodput, g.TokenGoodput)
		gen := newTable(7, "generation (ms)", "p50", "p90", "p95", "p99", "p99.9", "max", "mean")
		for _, row := range []struct {
			name string
			p    Percentiles
		}{{"time to first token", g.TTFT}, {"inter-token", g.ITL}, {"per output token", g.TPOT}, {"end to end", g.E2E}} {
			gen.Row(row.name, ms(row.p.P50), ms(row.p.P90), ms(row.p.P95), ms(row.p.P99), ms(row.p.P999), ms(row.p.Max), ms(row.p.Mean))
		}
		b.WriteString(gen.String())
		b.WriteString("\n")
	}
	lat := newTable(7, "latency (ms)", "p50", "p90", "p95", "p99", "p99.9", "max", "mean")
	row := func(name string, p Percentiles) []string {
		return []string{name, ms(p.P50), ms(p.P90), ms(p.P95), ms(p.P99), ms(p.P999), ms(p.Max), ms(p.Mean)}
	}
	lat.Row(row("total", r.Latency)...)
	if r.Mode == "open" {
		lat.Row(row("service (uncorrected)", r.Service)...)
	}
	b.WriteString(lat.String())
	b.WriteString("\n")
	if len(r.Models) > 0 {
		b.WriteString(r.modelsTable())
		b.WriteString("\n")
	}

	budget := newTable(5, "budget (ms)", "p50", "p95", "p99", "mean", "share", "", "source")
	for _, p := range r.Phases {
		bar := barStyle.Render(strings.Repeat("█", int(math.Round(p.Share*20))))
		share := fmt.Sprintf("%.1f%%", 100*p.Share)
		if p.Source == SourceStats {
			budget.Row(p.Phase, "-", "-", "-", ms(p.Mean), share, bar, p.Source)
			continue
		}
		budget.Row(p.Phase, ms(p.P50), ms(p.P95), ms(p.P99), ms(p.Mean), share, bar, p.Source)
	}
	b.WriteString(budget.String())
	b.WriteString("\n")
	if r.OK > 0 && r.ServerReported == 0 && !r.statsApplied() {
		b.WriteString(faintStyle.Render("the server reported no phases: queue to postprocess are counted in network") + "\n")
	}
	_, err := lipgloss.Fprint(w, b.String())
	return err
}

func (r Report) statsApplied() bool {
	for _, p := range r.Phases {
		if p.Source == SourceStats {
			return true
		}
	}
	return false
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// ErrorKinds names the run's errors by kind, the most frequent first, as
// " (queue_full 934, timeout 2)": "" when there were none.
func (r Report) ErrorKinds() string {
	if len(r.Errors) == 0 {
		return ""
	}
	kinds := slices.SortedFunc(maps.Keys(r.Errors), func(a, b string) int {
		return cmp.Or(cmp.Compare(r.Errors[b], r.Errors[a]), cmp.Compare(a, b))
	})
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
	}
	return " (" + strings.Join(kinds, ", ") + ")"
}

func (r Report) errorLine() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		part := fmt.Sprintf("%s: %d", k, r.Errors[k])
		if m := r.ErrorMessages[k]; m != "" {
			part += fmt.Sprintf(", first %q", m)
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("%.2f%% (%s)", 100*r.ErrorRate, strings.Join(parts, ", "))
}

// Objective is one service-level objective, such as p99<50ms.
type Objective struct {
	Metric string // p50, p90, p95, p99, p99.9, max, mean, or errors
	Limit  float64
	text   string
}

// ParseSLO parses objectives like "p99<50ms,errors<1%".
func ParseSLO(s string) ([]Objective, error) {
	var out []Objective
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		metric, limit, ok := strings.Cut(part, "<")
		if !ok {
			return nil, fmt.Errorf("--slo %q: want objectives like p99<50ms or errors<1%%", part)
		}
		o := Objective{Metric: strings.TrimSpace(metric), text: part}
		limit = strings.TrimSpace(limit)
		switch o.Metric {
		case "p50", "p90", "p95", "p99", "p99.9", "max", "mean", "ttft", "tpot", "itl", "e2e":
			d, err := time.ParseDuration(limit)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("--slo %q: %q is not a duration such as 50ms", part, limit)
			}
			o.Limit = float64(d) / float64(time.Millisecond)
		case "errors":
			v, err := strconv.ParseFloat(strings.TrimSuffix(limit, "%"), 64)
			if err != nil || !strings.HasSuffix(limit, "%") || v < 0 {
				return nil, fmt.Errorf("--slo %q: %q is not a percentage such as 1%%", part, limit)
			}
			o.Limit = v / 100
		default:
			return nil, fmt.Errorf("--slo %q: unknown metric %q (want p50, p90, p95, p99, p99.9, max, mean, errors, or for text generation ttft, tpot, itl, e2e)", part, o.Metric)
		}
		out = append(out, o)
	}
	return out, nil
}

// Judgement is one objective's verdict on a run: the objective as
// written, the figure it was judged on ("p99 is 3.120ms") and whether
// the run met it.
type Judgement struct {
	Objective string
	Figure    string
	Met       bool
}

// Judge judges r against each objective: the latencies, in
// milliseconds, from intended send; errors as the share of requests
// that failed; a generation objective (ttft, tpot, itl, e2e) on its p99,
// and only for a generation run. A run with no success meets no latency
// objective.
func (r Report) Judge(objectives []Objective) []Judgement {
	var out []Judgement
	for _, o := range objectives {
		var got float64
		switch o.Metric {
		case "p50":
			got = r.Latency.P50
		case "p90":
			got = r.Latency.P90
		case "p95":
			got = r.Latency.P95
		case "p99":
			got = r.Latency.P99
		case "p99.9":
			got = r.Latency.P999
		case "max":
			got = r.Latency.Max
		case "mean":
			got = r.Latency.Mean
		case "ttft", "tpot", "itl", "e2e":
			// Per request for goodput; the run's verdict is on the p99.
			g := r.Generation
			if g == nil {
				continue
			}
			p := map[string]Percentiles{"ttft": g.TTFT, "tpot": g.TPOT, "itl": g.ITL, "e2e": g.E2E}[o.Metric]
			out = append(out, Judgement{o.text, fmt.Sprintf("p99 %s is %.3fms", o.Metric, p.P99), p.P99 < o.Limit})
			continue
		case "errors":
			out = append(out, Judgement{o.text, fmt.Sprintf("error rate %.2f%%", 100*r.ErrorRate), r.ErrorRate < o.Limit})
			continue
		}
		out = append(out, Judgement{o.text, fmt.Sprintf("%s is %.3fms", o.Metric, got), got < o.Limit && r.OK > 0})
	}
	return out
}

// Violations returns the objectives r misses, described.
func (r Report) Violations(objectives []Objective) []string {
	var out []string
	for _, j := range r.Judge(objectives) {
		if !j.Met {
			out = append(out, j.Objective+": "+j.Figure)
		}
	}
	return out
}
