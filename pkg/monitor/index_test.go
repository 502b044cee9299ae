package monitor

import (
	"math"
	"testing"

	"github.com/infer-serving/infer/pkg/protocol"
)

// Each row gets its index entry; a version in the index with no metrics
// gets a row of its own, figures unknown, in the rows' order.
func TestWithIndexShowsEveryVersion(t *testing.T) {
	const srv = "http://127.0.0.1:8000"
	rows := []Row{{Figures: Figures{Key: Key{Server: srv, Model: "a", Version: "1"}, Ready: true, Rate: 3}}}
	index := []protocol.IndexEntry{
		{Name: "a", Version: "1", State: "READY", LoadedBytes: 1 << 20},
		{Name: "a", Version: "10", State: "UNAVAILABLE", Reason: "unloaded"},
		{Name: "a", Version: "2", State: "UNAVAILABLE", Reason: "unloaded"},
	}
	got := withIndex(rows, srv, index)
	if len(got) != 3 {
		t.Fatalf("%d rows, want 3: %+v", len(got), got)
	}
	for i, want := range []string{"1", "2", "10"} {
		if got[i].Version != want || got[i].Index == nil || got[i].Index.Version != want {
			t.Fatalf("row %d: version %s (index %+v), want %s with its entry", i, got[i].Version, got[i].Index, want)
		}
	}
	if got[0].Rate != 3 || got[0].Index.LoadedBytes != 1<<20 {
		t.Errorf("the row with metrics lost its figures or its memory: %+v", got[0])
	}
	if !math.IsNaN(got[1].Rate) || !math.IsNaN(got[1].P99) || got[1].Ready {
		t.Errorf("an index-only row: rate %v p99 %v ready %v, want unknown figures, not ready", got[1].Rate, got[1].P99, got[1].Ready)
	}
	bare := []Row{{Figures: Figures{Key: Key{Server: srv, Model: "a", Version: "1"}}}}
	if same := withIndex(bare, srv, nil); len(same) != 1 || same[0].Index != nil {
		t.Errorf("without an index: %+v, want the rows as they were", same)
	}
}
