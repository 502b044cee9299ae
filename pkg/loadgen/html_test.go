package loadgen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/profile"
)

func TestWriteHTML(t *testing.T) {
	r := Report{Target: "http://x", Protocol: "http-binary", Mode: "open", Requests: 30, OK: 29, ErrorRate: 1.0 / 30, Latency: Percentiles{Max: 12},
		Phases:       []PhaseReport{{Phase: "queue", Share: 0.25, Source: SourceServer}, {Phase: "network", Share: 0.75, Source: SourceRemainder}},
		Distribution: []Point{{0, 1}, {50, 2}, {99, 9}, {100, 12}},
		Timeline:     []SecondReport{{0, 10, 0, 1, 3}, {1, 20, 1, 2, 9}}}
	var out bytes.Buffer
	if err := WriteHTML(&out, r); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	for _, want := range []string{"<polyline", "Latency by percentile", "Latency over time", "Requests per second", "queue", "25.0%", "http-binary http://x"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Self-contained: no scripts, nothing fetched.
	for _, banned := range []string{"<script", "src=", "href=", "@import"} {
		if strings.Contains(page, banned) {
			t.Errorf("page contains %q", banned)
		}
	}
}

// Each budget phase gets a colour of its own and the right source: the
// server's phases (the response cache's included) are the server's.
func TestPhaseColoursAndSources(t *testing.T) {
	if len(phaseColors) < len(profile.BudgetPhases) {
		t.Fatalf("%d colours for %d phases", len(phaseColors), len(profile.BudgetPhases))
	}
	for _, p := range profile.ServerPhases {
		if src := phaseSource(p); src != SourceServer {
			t.Errorf("phase %s: source %s, want server", p, src)
		}
	}
}
