package runner

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// hostHealth is a model version's record of its hosts' crashes, shared by
// its instances.
type hostHealth struct {
	limit  int
	window time.Duration

	// streak is len(crashes), read on every answered batch without the
	// lock: an answer ends the streak.
	streak  atomic.Int32
	mu      sync.Mutex
	crashes []time.Time // the current streak's, within the window
	// down is why the version gave up, nil while it serves: read on every
	// request without the lock, written once under it.
	down     atomic.Pointer[string]
	total    int64 // crashes
	restarts int64
	memory   int64 // crashes that were memory-limit faults
	// watchers are the version's hosts: when it gives up, each host's
	// owner is sent a token on its dead channel, so that an idle host
	// stops, and a host loading a restart is killed, so that its owner
	// does not wait out the load.
	watchers []*host
	log      *slog.Logger // the version's, from its first host
}

// watch registers a host, to be stopped when the version gives up, and
// the version's log, which says so.
func (h *hostHealth) watch(w *host, log *slog.Logger) {
	h.mu.Lock()
	h.watchers = append(h.watchers, w)
	if h.log == nil {
		h.log = log
	}
	h.mu.Unlock()
}

// goDown takes the version down for reason and wakes its hosts' owners.
// h.mu is held.
func (h *hostHealth) goDown(reason string) {
	if h.down.Load() != nil {
		return
	}
	h.down.Store(&reason)
	if h.log != nil {
		h.log.Error("model version unavailable until it is loaded again", "reason", reason)
	}
	for _, w := range h.watchers {
		if w.doing() == hostLoading {
			w.kill()
		}
		select {
		case w.dead <- struct{}{}:
		default: // a token is there already
		}
	}
}

func (h *hostHealth) counts() (crashes, memory, restarts int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total, h.memory, h.restarts
}

// crashed records a crash and reports whether the version must give up.
func (h *hostHealth) crashed(now time.Time, cause string, memory bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total++
	if memory {
		h.memory++
	}
	keep := h.crashes[:0]
	for _, t := range h.crashes {
		if now.Sub(t) < h.window {
			keep = append(keep, t)
		}
	}
	h.crashes = append(keep, now)
	h.streak.Store(int32(len(h.crashes)))
	if len(h.crashes) >= h.limit {
		h.goDown(fmt.Sprintf("model host crashed %d times in a row within %s, last: %s; load the model again to retry", len(h.crashes), h.window, cause))
	}
	return h.down.Load() != nil
}

// killedIdle records a host killed from outside while it ran nothing: a
// crash in the counts, but no step in a streak (the version's model
// did not end it).
func (h *hostHealth) killedIdle() {
	h.mu.Lock()
	h.total++
	h.mu.Unlock()
}

// giveUp takes the version down at once, for reason: a restart that no
// retry can help.
func (h *hostHealth) giveUp(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.goDown("model host cannot start again: " + reason)
}

// answered ends a streak of crashes: a batch was answered.
func (h *hostHealth) answered() {
	if h.streak.Load() == 0 {
		return
	}
	h.mu.Lock()
	h.crashes = h.crashes[:0]
	h.streak.Store(0)
	h.mu.Unlock()
}

func (h *hostHealth) downReason() string {
	if r := h.down.Load(); r != nil {
		return *r
	}
	return ""
}

func (h *hostHealth) restarted() {
	h.mu.Lock()
	h.restarts++
	h.mu.Unlock()
}
