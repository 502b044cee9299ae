package runner

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// admission is a model version's entry: it lets a bounded number of
// requests into the version's work at once (decoding, the batcher's queue,
// execution, encoding) and holds the others, undecoded, in arrival order,
// up to max_queue_size of them; a request beyond that is refused at once.
//
// The bound is two full batches per instance: one running, one forming,
// enough to keep every instance busy with batches as large as the load
// allows. Holding the rest before their bodies are read is what keeps a
// flooded model from taking the server's CPU from the others: a waiting
// request costs a parked goroutine, its body still in the kernel, where
// one admitted costs its decoding, copies and encoding. It is the
// concurrency limit of Envoy's adaptive concurrency filter and of
// Netflix's concurrency-limits, fixed at what batching needs.
type admission struct {
	slots   chan struct{} // a token per request admitted
	waiting atomic.Int64  // requests held for a slot
	// maxWaiting is max_queue_size: more waiting are refused.
	maxWaiting int64
}

func newAdmission(cfg Config) *admission {
	perInstance := 2 * max(int64(*cfg.MaxBatchSize), 1)
	return &admission{
		slots:      make(chan struct{}, perInstance*int64(max(cfg.Instances, 1))),
		maxWaiting: int64(cfg.DynamicBatching.MaxQueueSize),
	}
}

// Enter admits a request into the model version's work, waiting for a
// place while fewer than max_queue_size others wait, for as long as ctx
// allows. It returns how long the request waited (the admission phase of
// its latency budget). A request admitted must call Leave once it is
// answered. A text generator schedules its own sequences: Enter admits at
// once. Errors: ErrModelNotReady (the version stopped serving), a
// wrapped ErrQueueFull, or ctx's error.
func (m *Model) Enter(ctx context.Context) (time.Duration, error) {
	if err := m.Admit(); err != nil {
		return 0, err
	}
	a := m.admission
	if a == nil {
		return 0, nil
	}
	select {
	case a.slots <- struct{}{}:
		return 0, nil
	default:
	}
	if a.waiting.Add(1) > a.maxWaiting {
		a.waiting.Add(-1)
		return 0, fmt.Errorf("model %q version %d: %w: %d requests waiting (max_queue_size)", m.meta.Name, m.meta.Version, ErrQueueFull, a.maxWaiting)
	}
	defer a.waiting.Add(-1)
	start := time.Now()
	select {
	case a.slots <- struct{}{}:
		return time.Since(start), nil
	case <-ctx.Done():
		return time.Since(start), fmt.Errorf("model %q version %d: waiting %v for admission: %w", m.meta.Name, m.meta.Version, time.Since(start).Round(time.Microsecond), ctx.Err())
	case <-m.closing:
		return time.Since(start), fmt.Errorf("%w: model %q version %d was unloaded", ErrModelNotReady, m.meta.Name, m.meta.Version)
	}
}

// Leave gives back the place Enter took.
func (m *Model) Leave() {
	if m.admission != nil {
		<-m.admission.slots
	}
}

// Waiting returns the requests held for admission now.
func (m *Model) Waiting() int64 {
	if m.admission == nil {
		return 0
	}
	return m.admission.waiting.Load()
}
