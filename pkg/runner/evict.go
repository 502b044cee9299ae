package runner

import (
	"cmp"
	"slices"
)

// candidate is a loaded version as the eviction policy sees it.
type candidate struct {
	name     string
	version  int64
	bytes    int64
	lastUsed int64 // Unix nanoseconds
	// held versions are never evicted: requests hold them (leases,
	// waiters), or they are pinned (keep_alive -1, warm).
	held bool
}

// lruVictims chooses the versions to evict so that need more bytes fit
// under budget with used bytes taken: idle ones, least recently used
// first, as few as it takes (ModelMesh's and Ollama's policy). It returns
// none and false when evicting every idle version would still leave too
// little room: then nothing is evicted for nothing.
func lruVictims(cands []candidate, used, need, budget int64) ([]candidate, bool) {
	if used+need <= budget {
		return nil, true
	}
	idle := make([]candidate, 0, len(cands))
	for _, c := range cands {
		if !c.held {
			idle = append(idle, c)
		}
	}
	slices.SortStableFunc(idle, func(a, b candidate) int {
		if c := cmp.Compare(a.lastUsed, b.lastUsed); c != 0 {
			return c
		}
		return cmp.Compare(b.bytes, a.bytes) // a tie: the larger first
	})
	for i, c := range idle {
		used -= c.bytes
		if used+need <= budget {
			return idle[:i+1], true
		}
	}
	return nil, false
}
