package generate

import (
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

// Drain lets the sequences submitted so far finish, for at most grace,
// then closes the engine (Close): an unloaded version answers what it was
// already generating, as a version that batches answers its queue.
// Submissions made meanwhile are still taken: the caller stops routing to
// the engine first. It looks every 10 ms.
func (e *Engine) Drain(grace time.Duration) {
	deadline := time.Now().Add(grace)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// live counts a sequence from before it is queued until its last
	// token: the loop's own counts miss one it has taken from the queue
	// and not yet counted (while it prefills the others).
	for e.live.Load() > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
	e.Close()
}

// Close stops the engine; sequences in flight or queued end with an error
// (runner.ErrClosed), and later submissions fail with it.
func (e *Engine) Close() {
	e.stop()
	<-e.done
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	e.closed = true
	for {
		select {
		case s := <-e.submit:
			e.finish(s, Token{Finish: "error", Err: runner.ErrClosed})
		default:
			return
		}
	}
}

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

func (e *Engine) setCounts(running, prefilled, waiting int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Running, e.stats.Prefilled, e.stats.Waiting = running, prefilled, waiting
	e.stats.KVBlocks, e.stats.KVBlocksUsed = e.pool.capacity(), e.pool.inUse()
	e.stats.KVBytesUsed = int64(e.pool.inUse()) * int64(4*e.pool.blockFloats)
	e.stats.PrefixHits, e.stats.PrefixLookups = e.pool.hits, e.pool.lookups
}

func (e *Engine) count(f func(*EngineStats)) {
	e.mu.Lock()
	f(&e.stats)
	e.mu.Unlock()
}

// finish sends s's last token and ends its stream; a sequence already
// finished is left as it is.
func (e *Engine) finish(s *sequence, last Token) {
	if s.out == nil {
		return
	}
	s.out.send(last, true)
	s.out = nil
	e.live.Add(-1)
}
