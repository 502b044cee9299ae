package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/protocol"
)

// Where the server has a repository index, the table shows each
// version's memory ("-" while unloaded) and its idle time; the detail
// view says its state, memory, last use and why it is not loaded.
func TestTopShowsMemoryAndIdleTime(t *testing.T) {
	loaded, unloaded := row("mlp", "1", 10, 0.002, 0, 0), row("mlp", "2", 0, 0, 0, 0)
	loaded.Index = &protocol.IndexEntry{Name: "mlp", Version: "1", State: "READY", LoadedBytes: 84_300_000, LastUsed: t0.Add(-3 * time.Second).UnixMilli()}
	unloaded.Ready = false
	unloaded.Index = &protocol.IndexEntry{Name: "mlp", Version: "2", State: "UNAVAILABLE", Reason: "unloaded (keep_alive): loads again at its next request",
		LastUsed: t0.Add(-7 * time.Minute).UnixMilli()}
	f := monitor.Frame{At: t0, Window: 10 * time.Second, Rows: []monitor.Row{loaded, unloaded}}
	text := PlainFrame(topOptions(), f, 140)
	want := map[string][]string{"1": {"80.4M", "3s"}, "2": {"-", "7m"}}
	seen := 0
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 12 || fields[0] != "mlp" {
			continue
		}
		seen++
		// MODEL VER REQ/S P50 P95 P99 ERR QUEUE OLDEST INFL MEM IDLE
		if w := want[fields[1]]; fields[10] != w[0] || fields[11] != w[1] {
			t.Errorf("mlp v%s: MEM %s IDLE %s, want %s %s\n%s", fields[1], fields[10], fields[11], w[0], w[1], text)
		}
	}
	if seen != 2 || !strings.Contains(text, "MEM") || !strings.Contains(text, "IDLE") {
		t.Fatalf("no MEM and IDLE columns for both versions:\n%s", text)
	}
	// At 120 columns they give way to the cost, which stays whole.
	narrow := PlainFrame(topOptions(), f, 120)
	if strings.Contains(narrow, "MEM") || !strings.Contains(narrow, "$/1K") {
		t.Errorf("at 120 columns, want the cost and no memory:\n%s", narrow)
	}
	for _, line := range strings.Split(narrow, "\n") {
		if len([]rune(line)) > 120 {
			t.Errorf("a line of %d columns at 120: %q", len([]rune(line)), line)
		}
	}

	m := NewTop(topOptions())
	m.width, m.height, m.plain = 140, 40, true
	m.show(f)
	m.selected = unloaded.Key
	detail := strings.Join(m.detailView(140, 40), "\n")
	for _, w := range []string{"UNAVAILABLE", "not loaded", "last used 7m ago", "keep_alive"} {
		if !strings.Contains(detail, w) {
			t.Errorf("the detail of an unloaded version lacks %q:\n%s", w, detail)
		}
	}
}

func TestSizeAndAgo(t *testing.T) {
	for b, want := range map[int64]string{512 << 10: "512K", 84_300_000: "80.4M", 3 << 30: "3.0G"} {
		if got := size(b); got != want {
			t.Errorf("size(%d) = %s, want %s", b, got, want)
		}
	}
	for d, want := range map[time.Duration]string{250 * time.Millisecond: "250ms", 12 * time.Second: "12s", 4 * time.Minute: "4m", 3 * time.Hour: "3h", 72 * time.Hour: "3d", -time.Second: "0ms"} {
		if got := ago(t0, t0.Add(-d)); got != want {
			t.Errorf("ago(%v) = %s, want %s", d, got, want)
		}
	}
	if got := ago(t0, time.Time{}); got != "-" {
		t.Errorf("ago(never) = %s, want -", got)
	}
}
