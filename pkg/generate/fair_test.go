package generate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// A request of many sequences submitted first shares the slots with a
// request that comes after it: the later one is admitted at the next
// free slot, not after every sequence of the first (FIFO admission held
// a bystander behind all of a 128-sequence request, minutes of a small
// generator's time).
func TestSlotsAreSharedBetweenRequests(t *testing.T) {
	d := loadTinyGPT(t)
	e := newEngine(t, d, EngineOptions{MaxBatch: 2})
	big := NewGroup()
	var outs []*Stream
	for _, r := range prompts(16) {
		r.MaxTokens, r.Group = 64, big
		out, err := e.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	small := prompts(1)[0]
	small.MaxTokens = 4
	late, err := e.Generate(context.Background(), small)
	if err != nil {
		t.Fatal(err)
	}
	// Finished sequences of the big request, counted as the small one's
	// tokens come: read every stream concurrently.
	var finished atomic.Int32
	var wg sync.WaitGroup
	for _, out := range outs {
		wg.Go(func() {
			for range out.All() {
			}
			finished.Add(1)
		})
	}
	var before int32 = -1
	for range late.All() {
		if before < 0 {
			before = finished.Load()
		}
	}
	wg.Wait()
	// Two slots: the first admission round may take a sequence of the big
	// request into each before the small one is queued; once one frees,
	// the small one has it. Under arrival order 14 would finish first.
	if before > 4 {
		t.Fatalf("%d of the big request's 16 sequences finished before the later request's first token, want at most 4", before)
	}
}
