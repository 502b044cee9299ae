package loadgen

import (
	"bytes"
	"strings"
	"testing"
)

func TestCompareAndCSV(t *testing.T) {
	a := Report{AchievedRate: 1000, Latency: Percentiles{P99: 10, P50: 2}, Phases: []PhaseReport{{Phase: "infer", Mean: 1}}}
	b := Report{AchievedRate: 1200, Latency: Percentiles{P99: 20, P50: 2}, Phases: []PhaseReport{{Phase: "infer", Mean: 0.5}}}
	var out bytes.Buffer
	if err := WriteComparison(&out, "a.json", "b.json", Compare(a, b)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+20.0% better", "+100.0% worse", "-50.0% better", "+0.0%",
		"noise: how far the runs' own second-to-second wandering can move a figure (95%); - where a run has under 3 seconds"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := WriteCSV(&out, []Report{a, b}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "infer_mean_ms") || !strings.HasPrefix(lines[2], "0,1200,") {
		t.Fatalf("csv:\n%s", out.String())
	}
}

// Runs of different loads are said to differ, naming the settings, but for
// those the caller says shape nothing of the load.
func TestSettingsDiff(t *testing.T) {
	a := Report{Settings: map[string]string{"batch-size": "1", "qps": "100", "server": "http://a", "seed": "1"}}
	b := Report{Settings: map[string]string{"batch-size": "4", "qps": "100", "server": "http://b", "cold": "true"}}
	got := strings.Join(SettingsDiff(a, b, "server"), "; ")
	if want := "batch-size 1 -> 4; seed 1 -> (unset); cold (unset) -> true"; got != want {
		t.Fatalf("diff %q, want %q", got, want)
	}
}

// A run's errors are named by kind, the most frequent first, for a line
// of a sweep or search.
func TestReportErrorKinds(t *testing.T) {
	if got := (Report{}).ErrorKinds(); got != "" {
		t.Errorf("no errors: %q", got)
	}
	r := Report{Errors: map[string]int64{"timeout": 2, "queue_full": 934, "canceled": 2}}
	if got, want := r.ErrorKinds(), " (queue_full 934, canceled 2, timeout 2)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
