package tui

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/profile"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const server = "http://127.0.0.1:8000"

// row builds a model version's figures with a trend whose rate climbs to
// rate and whose p99 wobbles around p99.
func row(model, version string, rate, p99, errRate float64, queue float64) monitor.Row {
	r := monitor.Row{Figures: monitor.Figures{
		Key:    monitor.Key{Server: server, Model: model, Version: version},
		Window: 10 * time.Second, Requests: rate * 10, Rate: rate, ErrorRate: errRate,
		Errors: map[string]float64{}, P50: p99 / 4, P95: p99 / 2, P99: p99,
		MeanBatch: 3.5, CacheHitRate: math.NaN(), CostPer1k: 0.0042, Busy: 1.2,
		Queue: queue, OldestAge: 0.0008 * queue, Inflight: queue + 2, Ready: true,
	}}
	if errRate > 0 {
		r.Errors["queue_full"] = errRate * rate * 10
	}
	r.Budget[profile.Queue] = p99 / 10
	r.Budget[profile.Preprocess] = p99 / 40
	r.Budget[profile.Infer] = p99 / 8
	r.Budget[profile.Postprocess] = p99 / 50
	for i := range 60 {
		r.Trend = append(r.Trend, monitor.Point{
			At:   t0.Add(time.Duration(i-60) * time.Second),
			Rate: rate * float64(i+1) / 60, P99: p99 * (1 + 0.3*math.Sin(float64(i)/5)),
		})
	}
	return r
}

// canaryFrame is a server mid-way through a canary of mlp v2.
func canaryFrame() monitor.Frame {
	spec := deploy.Spec{Model: "mlp", Stable: 1, Candidate: 2, Strategy: deploy.Canary, Steps: []float64{5, 25, 50, 100}}
	state := deploy.State{Spec: spec, Phase: deploy.Progressing, Step: 1, History: []deploy.Event{
		{Time: t0.Add(-40 * time.Second), Step: 0, Percent: 5, Kind: "started"},
		{Time: t0.Add(-20 * time.Second), Step: 0, Percent: 5, Kind: deploy.Pass, Reason: "within every bound",
			Figures: map[string]float64{"success_rate": 1, "p99_ratio": 1.04}},
		{Time: t0.Add(-20 * time.Second), Step: 1, Percent: 25, Kind: "step"},
	}}
	v1, v2 := row("mlp", "1", 712, 0.0042, 0, 3), row("mlp", "2", 238, 0.0061, 0.004, 1)
	// Both mlp versions are monitored; the candidate's outputs drifted.
	v1.Quality = &monitor.QualityFigures{SampleRate: 71.2, Compared: true, Worst: map[string]monitor.DriftScore{
		drift.TestPSI: {Role: drift.Output, Tensor: "probabilities", Feature: "argmax", Test: drift.TestPSI, Value: 0.012},
		drift.TestKS:  {Role: drift.Input, Tensor: "image", Feature: "l2_norm", Test: drift.TestKS, Value: 0.031},
	}}
	v2.Quality = &monitor.QualityFigures{SampleRate: 23.8, Dropped: 2, Compared: true, Alarm: true, Worst: map[string]monitor.DriftScore{
		drift.TestPSI:   {Role: drift.Output, Tensor: "probabilities", Feature: "argmax", Test: drift.TestPSI, Value: 0.412},
		drift.TestChi2:  {Role: drift.Output, Tensor: "probabilities", Feature: "argmax", Test: drift.TestChi2, Value: 88.5},
		drift.TestMeanZ: {Role: drift.Input, Tensor: "image", Feature: drift.FeaturePositionMean, Test: drift.TestMeanZ, Value: 2.1},
	}}
	return monitor.Frame{
		At: t0, Window: 10 * time.Second,
		Rows: []monitor.Row{
			v1, v2,
			row("text-encoder", "1", 95.5, 0.0213, 0.02, 12),
		},
		Rollouts: map[string]monitor.Rollout{"mlp": {Server: server, State: state}},
		Errors:   map[string]error{},
	}
}

func topOptions() TopOptions {
	slo, err := loadgen.ParseSLO("p99<20ms,errors<1%")
	if err != nil {
		panic(err)
	}
	return TopOptions{Servers: []string{server}, Interval: time.Hour, Objectives: slo}
}

// drive runs the dashboard at width x height under teatest, shows it the
// canary frame, presses keys, and returns the final screen as plain text.
func drive(t *testing.T, width, height int, keys ...tea.KeyPressMsg) (*Top, string) {
	t.Helper()
	tm := teatest.NewTestModel(t, NewTop(topOptions()), teatest.WithInitialTermSize(width, height))
	tm.Send(frameMsg(canaryFrame()))
	for _, k := range keys {
		tm.Send(k)
	}
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Top)
	if final.width != width || final.height != height {
		t.Fatalf("the model saw %dx%d, want %dx%d", final.width, final.height, width, height)
	}
	screen := ansi.Strip(final.Render())
	lines := strings.Split(screen, "\n")
	if len(lines) != height {
		t.Fatalf("%d lines, want exactly the terminal's %d", len(lines), height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > width {
			t.Fatalf("line %d is %d columns, wider than %d: %q", i+1, w, width, l)
		}
	}
	return final, screen
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func TestTopGolden(t *testing.T) {
	for _, size := range []struct{ w, h int }{{80, 24}, {160, 48}} {
		for _, c := range []struct {
			name string
			keys []string
		}{
			{"models", nil},
			{"select-detail", []string{"j", "enter"}},
			{"budget", []string{"tab"}},
			{"rollouts", []string{"tab", "tab"}},
			{"quality", []string{"tab", "tab", "tab"}},
			{"filter", []string{"/", "t", "e", "x", "enter"}},
			{"help", []string{"?"}},
		} {
			t.Run(fmt.Sprintf("%dx%d/%s", size.w, size.h, c.name), func(t *testing.T) {
				var keys []tea.KeyPressMsg
				for _, k := range c.keys {
					keys = append(keys, press(k))
				}
				_, screen := drive(t, size.w, size.h, keys...)
				golden.RequireEqual(t, screen)
			})
		}
	}
}

func TestTopKeysSelectAndFilter(t *testing.T) {
	final, _ := drive(t, 80, 24, press("j"), press("j"), press("j"), press("k"))
	if got := final.selected; got.Model != "mlp" || got.Version != "2" {
		t.Fatalf("down three (past the end) and up one selected %v, want mlp v2", got)
	}
	final, screen := drive(t, 80, 24, press("/"), press("e"), press("n"), press("c"), press("esc"))
	if final.filter.Value() != "" || strings.Count(screen, " mlp ") != 2 || !strings.Contains(screen, ">text-encoder") {
		t.Fatalf("esc did not clear the filter (and keep the selection it made):\n%s", screen)
	}
	final, screen = drive(t, 80, 24, press("/"), press("z"), press("enter"))
	if !strings.Contains(screen, `no model matches "z"`) {
		t.Fatalf("a filter matching nothing:\n%s", screen)
	}
	final, _ = drive(t, 80, 24, press("tab"), press("tab"), press("tab"), press("tab"))
	if final.panel != panelModels {
		t.Fatalf("four tabs left panel %d, want the models again", final.panel)
	}
}

func TestTopPauseHoldsTheFrame(t *testing.T) {
	tm := teatest.NewTestModel(t, NewTop(topOptions()), teatest.WithInitialTermSize(80, 24))
	first := canaryFrame()
	tm.Send(frameMsg(first))
	tm.Send(press("p"))
	later := canaryFrame()
	later.At = first.At.Add(time.Second)
	later.Rows = later.Rows[:1]
	tm.Send(frameMsg(later))
	tm.Send(press("q"))
	paused := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Top)
	if !paused.Frame().At.Equal(first.At) || len(paused.Frame().Rows) != 3 {
		t.Fatalf("paused, the dashboard moved on to %v", paused.Frame().At)
	}
	if !strings.Contains(ansi.Strip(paused.Render()), "PAUSED") {
		t.Fatal("a paused dashboard does not say so")
	}

	tm = teatest.NewTestModel(t, NewTop(topOptions()), teatest.WithInitialTermSize(80, 24))
	tm.Send(frameMsg(first))
	tm.Send(press("p"))
	tm.Send(frameMsg(later))
	tm.Send(press("p"))
	tm.Send(press("q"))
	resumed := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Top)
	if !resumed.Frame().At.Equal(later.At) {
		t.Fatalf("resumed, the dashboard shows %v, want the latest frame", resumed.Frame().At)
	}
}

// Figures past an objective are red, near it yellow, within it green.
func TestTopColoursBySLO(t *testing.T) {
	m := NewTop(topOptions()) // p99<20ms, errors<1%
	m.show(canaryFrame())
	raw := m.Render()
	for _, c := range []struct {
		text  string
		style string
	}{
		{badStyle.Render("21.3ms"), "text-encoder's p99 over 20ms"},
		{badStyle.Render("2.0%"), "text-encoder's errors over 1%"},
		{goodStyle.Render("4.20ms"), "mlp v1's p99 well within"},
		{goodStyle.Render("0.4%"), "mlp v2's errors within"},
	} {
		if !strings.Contains(raw, c.text) {
			t.Errorf("%s: %q is not drawn", c.style, c.text)
		}
	}
}

// The quality panel: a drifted version in red with its largest PSI past
// the alarm threshold red too, one within its baseline green, and one
// without monitoring saying how to turn it on.
func TestTopQualityPanel(t *testing.T) {
	m := NewTop(topOptions())
	m.show(canaryFrame())
	m.panel = panelQuality
	raw := m.Render()
	for _, c := range []struct {
		text, what string
	}{
		{badStyle.Render("DRIFT"), "mlp v2's drift alarm"},
		{goodStyle.Render("ok"), "mlp v1 within its baseline"},
		{badStyle.Render("psi       0.412  output/probabilities/argmax"), "mlp v2's PSI past 0.25"},
		{faintStyle.Render("psi       0.012  output/probabilities/argmax"), "mlp v1's PSI within"},
		{"not monitored (monitor.sample", "text-encoder unmonitored"},
	} {
		if !strings.Contains(raw, c.text) {
			t.Errorf("%s: %q is not drawn:\n%s", c.what, c.text, ansi.Strip(raw))
		}
	}
	// A plain snapshot holds the panel when a version is monitored.
	if plain := PlainFrame(topOptions(), canaryFrame(), 120); !strings.Contains(plain, "chi2") || !strings.Contains(plain, "23.8") {
		t.Errorf("the plain snapshot lacks the quality panel:\n%s", plain)
	}
}

func TestSparklineAndBar(t *testing.T) {
	if got := sparkline([]float64{0, 1, 2, 4, 8, math.NaN()}, 8); got != "  ▁▂▃▅█ " {
		t.Fatalf("sparkline %q", got)
	}
	bar := ansi.Strip(stackedBar(monitor.BudgetPhases, []float64{0, 1, math.NaN(), 2, 0.001}, 12))
	if bar != "▒▒▒▒███████▓" {
		t.Fatalf("bar %q: want 12 cells, queue a third, infer two, postprocess one at least", bar)
	}
}
