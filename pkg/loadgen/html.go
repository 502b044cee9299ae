package loadgen

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// chart is one SVG line or bar chart, its geometry worked out in Go so
// that the page needs no script and no network.
type chart struct {
	Title         string
	Width, Height int
	Left, Bottom  int // plot origin
	Lines         []line
	Bars          []bar
	XTicks        []tick
	YTicks        []tick
	XLabel        string
	YLabel        string
}

type line struct {
	Name, Color string
	Points      string
}

type bar struct {
	X, Y, W, H float64
	Color      string
	Title      string
}

type tick struct {
	Pos   float64
	Label string
}

const (
	chartW, chartH   = 760, 260
	plotL, plotR     = 64, 16
	plotTop, plotBot = 28, 40
)

// scale maps data ranges to the plot area.
type scale struct{ x0, x1, y0, y1 float64 }

func (s scale) x(v float64) float64 {
	return plotL + (v-s.x0)/(s.x1-s.x0)*float64(chartW-plotL-plotR)
}

func (s scale) y(v float64) float64 {
	return float64(chartH-plotBot) - (v-s.y0)/(s.y1-s.y0)*float64(chartH-plotTop-plotBot)
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func yTicks(s scale, unit string) []tick {
	var out []tick
	for i := 0; i <= 4; i++ {
		v := s.y0 + (s.y1-s.y0)*float64(i)/4
		out = append(out, tick{s.y(v), trimFloat(v) + unit})
	}
	return out
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func polyline(pts [][2]float64) string {
	var b strings.Builder
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", p[0], p[1])
	}
	return b.String()
}

func timelineCharts(r Report) []chart {
	if len(r.Timeline) == 0 {
		return nil
	}
	last := float64(r.Timeline[len(r.Timeline)-1].Second + 1)
	var maxReq, maxLat float64
	for _, s := range r.Timeline {
		maxReq = math.Max(maxReq, float64(s.Requests))
		maxLat = math.Max(maxLat, s.P99)
	}
	xt := func(s scale) []tick {
		var out []tick
		step := math.Max(1, math.Ceil(last/10))
		for v := 0.0; v <= last; v += step {
			out = append(out, tick{s.x(v), fmt.Sprintf("%gs", v)})
		}
		return out
	}
	rs := scale{0, last, 0, niceMax(maxReq)}
	rate := chart{Title: "Requests per second (by intended send time), failures in red", XLabel: "time", YLabel: "requests",
		XTicks: xt(rs), YTicks: yTicks(rs, "")}
	w := rs.x(1) - rs.x(0)
	for _, s := range r.Timeline {
		x := rs.x(float64(s.Second))
		ok := float64(s.Requests - s.Errors)
		rate.Bars = append(rate.Bars,
			bar{x + 1, rs.y(ok), math.Max(w-2, 1), rs.y(0) - rs.y(ok), "#4c78a8", fmt.Sprintf("second %d: %d requests", s.Second, s.Requests)},
			bar{x + 1, rs.y(float64(s.Requests)), math.Max(w-2, 1), rs.y(ok) - rs.y(float64(s.Requests)), "#e45756", fmt.Sprintf("second %d: %d failed", s.Second, s.Errors)})
	}
	ls := scale{0, last, 0, niceMax(maxLat)}
	lat := chart{Title: "Latency over time (from intended send time)", XLabel: "time", YLabel: "ms", XTicks: xt(ls), YTicks: yTicks(ls, "")}
	var p50, p99 [][2]float64
	for _, s := range r.Timeline {
		x := ls.x(float64(s.Second) + 0.5)
		p50 = append(p50, [2]float64{x, ls.y(s.P50)})
		p99 = append(p99, [2]float64{x, ls.y(s.P99)})
	}
	lat.Lines = []line{{"p50", "#4c78a8", polyline(p50)}, {"p99", "#e45756", polyline(p99)}}
	return []chart{rate, lat}
}

// distributionChart plots latency against percentile on the usual
// 1/(1-q) log axis, where the tail gets room.
func distributionChart(r Report) *chart {
	if len(r.Distribution) == 0 {
		return nil
	}
	xOf := func(q float64) float64 { return math.Log10(1 / (1 - math.Min(q, 99.999)/100)) }
	s := scale{0, 5, 0, niceMax(r.Latency.Max)}
	c := chart{Title: "Latency by percentile", XLabel: "percentile", YLabel: "ms", YTicks: yTicks(s, "")}
	for _, q := range []float64{0, 90, 99, 99.9, 99.99} {
		c.XTicks = append(c.XTicks, tick{s.x(xOf(q)), trimFloat(q) + "%"})
	}
	var pts [][2]float64
	for _, p := range r.Distribution {
		pts = append(pts, [2]float64{s.x(xOf(p.Percentile)), s.y(p.Ms)})
	}
	c.Lines = []line{{"latency", "#4c78a8", polyline(pts)}}
	return &c
}

// phaseColors colour the budget's phases in profile.BudgetPhases order.
var phaseColors = []string{"#bab0ac", "#9d755d", "#b279a2", "#8cd17d", "#e45756", "#f58518", "#ff9da6", "#eeca3b", "#54a24b", "#72b7b2", "#4c78a8"}

type budgetSlice struct {
	Phase      string
	X, W       float64
	Color      string
	Share, P50 string
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>infer bench: {{.R.Protocol}} {{.R.Target}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 820px; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; } th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } svg text { font-size: 11px; fill: #444; }
</style></head><body>
<h1>infer bench: {{.R.Protocol}} {{.R.Target}}{{if .R.Model}}, model {{.R.Model}}{{end}}</h1>
<p>{{.R.Mode}} loop, {{.R.Requests}} requests in {{printf "%.2f" .R.Seconds}}s{{if eq .R.Mode "open"}}, target {{printf "%.1f" .R.TargetRate}}/s{{end}},
achieved {{printf "%.1f" .R.AchievedRate}}/s; errors {{printf "%.2f" .ErrorPct}}%{{if eq .R.Mode "open"}}; {{.R.Late}} late sends{{end}}.</p>
<table><tr><th>latency (ms)</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>
<tr><td>total (from intended send)</td><td>{{printf "%.3f" .R.Latency.P50}}</td><td>{{printf "%.3f" .R.Latency.P90}}</td><td>{{printf "%.3f" .R.Latency.P95}}</td><td>{{printf "%.3f" .R.Latency.P99}}</td><td>{{printf "%.3f" .R.Latency.P999}}</td><td>{{printf "%.3f" .R.Latency.Max}}</td><td>{{printf "%.3f" .R.Latency.Mean}}</td></tr>
<tr><td>service (uncorrected)</td><td>{{printf "%.3f" .R.Service.P50}}</td><td>{{printf "%.3f" .R.Service.P90}}</td><td>{{printf "%.3f" .R.Service.P95}}</td><td>{{printf "%.3f" .R.Service.P99}}</td><td>{{printf "%.3f" .R.Service.P999}}</td><td>{{printf "%.3f" .R.Service.Max}}</td><td>{{printf "%.3f" .R.Service.Mean}}</td></tr>
</table>
<h2>Where the time went</h2>
<svg width="760" height="46" role="img" aria-label="latency budget">{{range .Budget}}<rect x="{{.X}}" y="4" width="{{.W}}" height="22" fill="{{.Color}}"><title>{{.Phase}}: {{.Share}}</title></rect>{{end}}</svg>
<table><tr><th>phase</th><th>p50 ms</th><th>share</th><th>source</th></tr>{{range $i, $b := .Budget}}<tr><td><span style="color:{{$b.Color}}">■</span> {{$b.Phase}}</td><td>{{$b.P50}}</td><td>{{$b.Share}}</td><td>{{index $.Sources $i}}</td></tr>{{end}}</table>
{{range $c := .Charts}}<h2>{{.Title}}</h2>
<svg width="{{.Width}}" height="{{.Height}}" role="img" aria-label="{{.Title}}">
<line x1="{{.Left}}" y1="{{.Bottom}}" x2="{{.Width}}" y2="{{.Bottom}}" stroke="#888"/><line x1="{{.Left}}" y1="20" x2="{{.Left}}" y2="{{.Bottom}}" stroke="#888"/>
{{range .YTicks}}<text x="{{$c.Left}}" dx="-6" y="{{.Pos}}" dy="4" text-anchor="end">{{.Label}}</text><line x1="{{$c.Left}}" x2="{{$c.Width}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#eee"/>{{end}}
{{range .XTicks}}<text x="{{.Pos}}" y="{{$c.Bottom}}" dy="16" text-anchor="middle">{{.Label}}</text>{{end}}
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect>{{end}}
{{range $i, $l := .Lines}}<polyline points="{{$l.Points}}" fill="none" stroke="{{$l.Color}}" stroke-width="2"/><text x="{{$c.Width}}" dx="-60" y="{{add 14 (mul $i 14)}}" fill="{{$l.Color}}">— {{$l.Name}}</text>{{end}}
<text x="{{.Left}}" dx="-50" y="14">{{.YLabel}}</text>
</svg>{{end}}
</body></html>
`))

// WriteHTML writes the report as one self-contained page: the figures,
// the budget as a stacked bar, and charts of throughput and latency over
// time and of latency by percentile. It needs no network to open.
func WriteHTML(w io.Writer, r Report) error {
	data := struct {
		R        Report
		ErrorPct float64
		Budget   []budgetSlice
		Sources  []string
		Charts   []chart
	}{R: r, ErrorPct: 100 * r.ErrorRate}
	x := 0.0
	for i, p := range r.Phases {
		width := p.Share * chartW
		data.Budget = append(data.Budget, budgetSlice{Phase: p.Phase, X: x, W: width, Color: phaseColors[i%len(phaseColors)],
			Share: fmt.Sprintf("%.1f%%", 100*p.Share), P50: fmt.Sprintf("%.3f", p.P50)})
		data.Sources = append(data.Sources, p.Source)
		x += width
	}
	data.Charts = append(data.Charts, timelineCharts(r)...)
	if c := distributionChart(r); c != nil {
		data.Charts = append(data.Charts, *c)
	}
	for i := range data.Charts {
		data.Charts[i].Width, data.Charts[i].Height = chartW, chartH
		data.Charts[i].Left, data.Charts[i].Bottom = plotL, chartH-plotBot
	}
	return page.Execute(w, data)
}
