package queueapi

import (
	"context"
	"sync"
)

// bodyBudget bounds the request bodies one model's consumer holds, in
// bytes. A broker hands a fetch's requests whole (Redis's XREADGROUP
// reads each entry into the reply), so what the budget decides is how
// many the next fetch may take: as many as the room left holds at the
// size of the largest body seen, at least one, and none while the bodies
// held fill the budget. A fetch after a run of small requests can still
// overshoot by its count times the next bodies' size, once: the largest
// seen then slows the fetches that follow to one at a time. The zero
// limit bounds nothing.
type bodyBudget struct {
	limit int64

	mu      sync.Mutex
	held    int64
	largest int64
	freed   chan struct{} // closed when bodies are given back, while a fetch waits
}

func newBodyBudget(limit int64) *bodyBudget {
	return &bodyBudget{limit: limit}
}

// wait waits, as long as ctx allows, until the bodies held are under the
// limit; it reports false when ctx ended first.
func (b *bodyBudget) wait(ctx context.Context) bool {
	for {
		b.mu.Lock()
		if b.limit <= 0 || b.held < b.limit {
			b.mu.Unlock()
			return true
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

// room is how many requests the next fetch may take, of at most n.
func (b *bodyBudget) room(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit <= 0 || b.largest == 0 {
		return n
	}
	return int(max(1, min(int64(n), (b.limit-b.held)/b.largest)))
}

// take counts a fetched body of n bytes as held and returns what give
// must give back.
func (b *bodyBudget) take(n int) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held += int64(n)
	b.largest = max(int64(n), b.largest-b.largest/64) // a large body seen long ago weighs less and less
	return int64(n)
}

// give gives back a body's bytes once its request is settled.
func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
}
