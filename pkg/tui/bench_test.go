package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/profile"
)

// benchProgress is a run 12 seconds in (2 of warm-up) at 500/s, with
// latencies that grow over its seconds and a few timeouts.
func benchProgress(elapsed time.Duration) loadgen.Progress {
	rec := loadgen.NewRecorder()
	rec.Epoch = t0
	seconds := int((elapsed - 2*time.Second) / time.Second)
	for s := range seconds {
		for i := range 500 {
			intended := t0.Add(time.Duration(s)*time.Second + time.Duration(i)*2*time.Millisecond)
			service := time.Duration(800+s*100+i%50*20) * time.Microsecond
			res := loadgen.Result{Intended: intended, Start: intended.Add(50 * time.Microsecond), End: intended.Add(50*time.Microsecond + service)}
			res.Phases.Set(profile.Write, 30*time.Microsecond)
			res.Phases.Set(profile.Queue, service/5)
			res.Phases.Set(profile.Preprocess, service/20)
			res.Phases.Set(profile.Infer, service/2)
			res.Phases.Set(profile.Postprocess, service/25)
			res.ServerReported = true
			if i%250 == 7 {
				res.Err, res.Kind = errors.New("deadline exceeded"), "timeout"
			}
			res.Finish()
			rec.Record(&res)
		}
	}
	n := rec.Count()
	return loadgen.Progress{Elapsed: elapsed, Sent: n + 700, OK: rec.OK + 700, Failed: n - rec.OK,
		Recording: elapsed > 2*time.Second, TargetRate: 500, Recorded: rec}
}

func benchOptions() BenchOptions {
	slo, err := loadgen.ParseSLO("p99<2ms,errors<1%")
	if err != nil {
		panic(err)
	}
	return BenchOptions{Target: "http-binary http://127.0.0.1:8000 model mlp", Load: "open loop, constant from 500/s",
		Duration: 30 * time.Second, Warmup: 2 * time.Second, Objectives: slo, USDPerHour: 2.5}
}

func TestBenchGolden(t *testing.T) {
	for _, size := range []struct{ w, h int }{{80, 24}, {160, 48}} {
		t.Run(fmt.Sprintf("%dx%d", size.w, size.h), func(t *testing.T) {
			tm := teatest.NewTestModel(t, NewBench(benchOptions()), teatest.WithInitialTermSize(size.w, size.h))
			for s := 3; s <= 12; s++ {
				tm.Send(BenchProgress(benchProgress(time.Duration(s) * time.Second)))
			}
			tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
			final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Bench)
			if !final.Stopped() {
				t.Fatal("q did not stop the run")
			}
			screen := ansi.Strip(final.Render())
			lines := strings.Split(screen, "\n")
			if len(lines) != size.h {
				t.Fatalf("%d lines, want %d", len(lines), size.h)
			}
			for i, l := range lines {
				if ansi.StringWidth(l) > size.w {
					t.Fatalf("line %d is wider than %d: %q", i+1, size.w, l)
				}
			}
			golden.RequireEqual(t, screen)
		})
	}
}

func TestBenchEndsWhenTheRunDoes(t *testing.T) {
	tm := teatest.NewTestModel(t, NewBench(benchOptions()), teatest.WithInitialTermSize(80, 24))
	tm.Send(BenchProgress(benchProgress(5 * time.Second)))
	tm.Send(BenchDone{})
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Bench)
	if final.Stopped() {
		t.Fatal("the run's end counted as a stop from the keyboard")
	}
	plain := final.Plain(100)
	for _, want := range []string{"target 500/s", "failed 6", "timeout 6", "p99 ", "per 1,000 requests", "queue"} {
		if !strings.Contains(plain, want) {
			t.Errorf("the snapshot lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "\x1b[") {
		t.Fatal("the plain snapshot holds escape codes")
	}
}

// A text generation run shows its token figures live.
func TestBenchShowsGeneration(t *testing.T) {
	rec := loadgen.NewRecorder()
	for i := range 20 {
		start := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		res := loadgen.Result{Intended: start, Start: start, End: start.Add(120 * time.Millisecond),
			Gen: &loadgen.Gen{TTFT: 20 * time.Millisecond, E2E: 120 * time.Millisecond, Tokens: 11, Chunks: 11, Gaps: []time.Duration{10 * time.Millisecond}}}
		res.Finish()
		rec.Record(&res)
	}
	m := NewBench(benchOptions())
	m.Update(BenchProgress(loadgen.Progress{Elapsed: 3 * time.Second, Sent: 20, OK: 20, Recording: true, Recorded: rec}))
	plain := m.Plain(120)
	if !strings.Contains(plain, "TTFT p50 20.0ms") || !strings.Contains(plain, "TPOT p50 10.0ms") || !strings.Contains(plain, "220 tokens/s") {
		t.Fatalf("no generation figures:\n%s", plain)
	}
}

// Every phase of the budget has a look of its own, so a bar always fills
// its width and no two phases read alike.
func TestEveryPhaseHasALook(t *testing.T) {
	seen := map[string]profile.Phase{}
	for _, p := range profile.BudgetPhases {
		look, ok := phaseLook[p]
		if !ok || look.glyph == "" {
			t.Fatalf("phase %s has no glyph", p)
		}
		if other, dup := seen[look.glyph]; dup {
			t.Fatalf("phases %s and %s share the glyph %q", p, other, look.glyph)
		}
		seen[look.glyph] = p
	}
	secs := make([]float64, len(profile.BudgetPhases))
	for i := range secs {
		secs[i] = 1
	}
	if w := ansi.StringWidth(stackedBar(profile.BudgetPhases, secs, 40)); w != 40 {
		t.Fatalf("a bar of every phase is %d cells, want 40", w)
	}
}
