package tui

import (
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/monitor"
)

// memoryColumns are the models table's columns of model control, from
// the repository index: each version's loaded memory ("-" while
// unloaded) and how long it has been idle: since its last use (its last request,
// or its load), at the frame's time. They are shown where a server has a
// repository index.
func memoryColumns(at time.Time) []column {
	return []column{
		{"MEM", 8, false, func(r monitor.Row) string {
			if r.Index == nil || r.Index.LoadedBytes <= 0 {
				return "-"
			}
			return size(r.Index.LoadedBytes)
		}},
		{"IDLE", 7, false, func(r monitor.Row) string {
			if r.Index == nil {
				return "-"
			}
			return ago(at, r.Index.LastUse())
		}},
	}
}

// memoryLine is the detail view's line of model control: state, memory
// and last use, and why a version is not loaded.
func memoryLine(r monitor.Row, at time.Time) string {
	e := r.Index
	if e == nil {
		return ""
	}
	mem := "not loaded"
	if e.LoadedBytes > 0 {
		mem = size(e.LoadedBytes) + " loaded"
	}
	line := fmt.Sprintf(" %s  %s  last used %s", e.State, mem, ago(at, e.LastUse()))
	if !e.LastUse().IsZero() {
		line += " ago"
	}
	if e.Reason != "" {
		line += "  (" + e.Reason + ")"
	}
	return line
}

// size formats bytes in binary units: 512K, 86.4M, 1.2G.
func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.0fK", float64(b)/(1<<10))
}

// ago formats the time from t to at: 850ms, 12s, 4m, 3h, 2d; "-" for a
// zero t (never).
func ago(at, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(at.Sub(t), 0)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
