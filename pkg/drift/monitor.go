package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// Defaults of Options.
const (
	DefaultWindow        = time.Minute
	DefaultKeep          = 30 // closed windows kept: half an hour at DefaultWindow
	DefaultMaxFeatures   = 32
	DefaultMaxCategories = 64
	DefaultQueue         = 256
)

// Options configure a Monitor.
type Options struct {
	Model   string
	Version int64
	// Sample is the fraction of requests observed, in (0, 1].
	Sample float64
	// Window is how long each window of statistics runs (DefaultWindow
	// when 0); Keep is how many closed windows are kept (DefaultKeep).
	Window time.Duration
	Keep   int
	// Layout says how tensors become features; zero caps take the
	// defaults.
	Layout Layout
	// Queue bounds the sampled requests waiting for the worker
	// (DefaultQueue); a full queue drops the sample and counts it.
	Queue int
	// Baseline is the reference every closed window is compared with
	// (nil: none yet; see SetBaseline).
	Baseline *Summary
	// Compare tunes the drift tests.
	Compare CompareOptions
	// Samples keeps request/response pairs for review (off when its Dir
	// is empty).
	Samples SampleOptions
	// Logger receives drift alarms and write failures; give it the model
	// and version (slog.Default() when nil).
	Logger *slog.Logger
}

// Monitor watches one model version's inputs and outputs: it samples a
// fraction of requests on the request path, summarises them on a worker
// of its own in windows of time, compares each closed window with a
// baseline, and keeps a reservoir of samples for review.
type Monitor struct {
	opts      Options
	threshold uint64 // a request is sampled when a random uint64 falls below it
	all       bool   // Sample is 1

	queue            chan observation
	sampled, dropped atomic.Int64

	mu       sync.Mutex // guards the fields below; never taken on the request path
	cur      *window
	closed   []*window // oldest first
	baseline *Summary
	report   *Report // the last closed window against the baseline

	samples *reservoir
	cancel  context.CancelFunc
	done    chan struct{}
}

// observation is one sampled request, its tensors copied, or a request to
// close the open window (flushed is then closed once it is).
type observation struct {
	id              string
	at              time.Time
	inputs, outputs []tensor.Tensor
	flushed         chan struct{}
}

// New starts a monitor; its worker runs until Close.
func New(opts Options) (*Monitor, error) {
	if !(opts.Sample > 0 && opts.Sample <= 1) {
		return nil, fmt.Errorf("monitor.sample: %v, want a fraction in (0, 1]", opts.Sample)
	}
	if opts.Window < 0 || opts.Keep < 0 || opts.Queue < 0 || opts.Layout.MaxFeatures < 0 || opts.Layout.MaxCategories < 0 {
		return nil, errors.New("monitor: window, keep, queue, max_features and max_categories must not be negative")
	}
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Queue == 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Layout.MaxFeatures == 0 {
		opts.Layout.MaxFeatures = DefaultMaxFeatures
	}
	if opts.Layout.MaxCategories == 0 {
		opts.Layout.MaxCategories = DefaultMaxCategories
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Monitor{
		opts:      opts,
		threshold: uint64(opts.Sample * math.MaxUint64),
		all:       opts.Sample >= 1,
		queue:     make(chan observation, opts.Queue),
		cur:       newWindow(time.Now()),
		baseline:  opts.Baseline,
		done:      make(chan struct{}),
	}
	if opts.Samples.Dir != "" {
		var err error
		if m.samples, err = newReservoir(opts.Samples, opts.Model, opts.Version); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.work(ctx)
	return m, nil
}

// Observe is the request path's hook: it decides whether to sample the
// request and, when it does, copies its tensors and hands them to the
// worker. An unsampled request costs one random number: no lock, no
// allocation. A sample the worker has no room for is dropped and counted.
// A nil Monitor observes nothing.
func (m *Monitor) Observe(id string, inputs, outputs []tensor.Tensor) {
	if m == nil || !m.all && rand.Uint64() >= m.threshold {
		return
	}
	// Copies: the caller's buffers may be reused once its request is answered.
	o := observation{id: id, at: time.Now(), inputs: tensor.Copies(inputs), outputs: tensor.Copies(outputs)}
	select {
	case m.queue <- o:
		m.sampled.Add(1)
	default:
		m.dropped.Add(1)
	}
}

// Flush closes the open window once every request observed before the
// call is in it, so that the window's report reflects them; it returns
// when that is done or ctx ends.
func (m *Monitor) Flush(ctx context.Context) error {
	o := observation{flushed: make(chan struct{})}
	select {
	case m.queue <- o:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return errors.New("monitor closed")
	}
	select {
	case <-o.flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the worker; what it had not summarised is dropped, and the
// samples of the open window are written out.
func (m *Monitor) Close() {
	if m == nil {
		return
	}
	m.cancel()
	<-m.done
}

func (m *Monitor) work(ctx context.Context) {
	defer close(m.done)
	ticker := time.NewTicker(m.opts.Window)
	defer ticker.Stop()
	for {
		select {
		case o := <-m.queue:
			if o.flushed != nil {
				m.rotate(time.Now())
				close(o.flushed)
				continue
			}
			m.add(o)
		case now := <-ticker.C:
			m.rotate(now)
		case <-ctx.Done():
			m.writeSamples(time.Now())
			return
		}
	}
}

func (m *Monitor) add(o observation) {
	l := m.opts.Layout
	m.mu.Lock()
	w := m.cur
	w.requests++
	for _, t := range o.inputs {
		w.observe(t, Input, l)
	}
	for _, t := range o.outputs {
		w.observe(t, Output, l)
	}
	m.mu.Unlock()
	if m.samples != nil {
		m.samples.offer(o)
	}
}

// rotate closes the open window at now, compares it with the baseline,
// and opens the next.
func (m *Monitor) rotate(now time.Time) {
	m.mu.Lock()
	w := m.cur
	w.end = now
	m.cur = newWindow(now)
	m.closed = append(m.closed, w)
	if len(m.closed) > m.opts.Keep {
		m.closed = append(m.closed[:0], m.closed[len(m.closed)-m.opts.Keep:]...)
	}
	base := m.baseline
	m.mu.Unlock()
	if base != nil {
		r := Compare(*base, w.summary(), m.opts.Compare)
		m.mu.Lock()
		m.report = &r
		m.mu.Unlock()
		if r.Alarm() {
			m.opts.Logger.Warn("drift against the baseline", "drifted", r.Drifted)
		}
	}
	m.writeSamples(now)
}

func (m *Monitor) writeSamples(now time.Time) {
	if m.samples == nil {
		return
	}
	if err := m.samples.flush(now); err != nil {
		m.opts.Logger.Error("review samples not written", "err", err)
	}
}

// Summary returns the statistics of the windows that ended after since,
// and of the open one, merged. A window that began before since counts
// whole: the span is as fine as Options.Window.
func (m *Monitor) Summary(since time.Time) Summary {
	merged := newWindow(time.Time{})
	m.mu.Lock()
	for _, w := range m.closed {
		if w.end.After(since) {
			merged.merge(w, m.opts.Layout)
		}
	}
	merged.merge(m.cur, m.opts.Layout)
	m.mu.Unlock()
	merged.end = time.Now()
	s := merged.summary()
	s.Model, s.Version = m.opts.Model, m.opts.Version
	return s
}

// SetBaseline makes b the reference of the windows that close from now
// on (nil: none).
func (m *Monitor) SetBaseline(b *Summary) {
	m.mu.Lock()
	m.baseline = b
	m.report = nil
	m.mu.Unlock()
}

// Quality is a monitor's state: its counters, the baseline it compares
// with, the last closed window's statistics and its drift report.
type Quality struct {
	Model   string  `json:"model"`
	Version int64   `json:"version"`
	Sample  float64 `json:"sample"`
	// Sampled counts the requests handed to the worker, Dropped those
	// sampled but dropped because its queue was full.
	Sampled  int64        `json:"sampled"`
	Dropped  int64        `json:"dropped"`
	Window   string       `json:"window"`
	Baseline *Span        `json:"baseline"`
	Last     *Summary     `json:"last_window"`
	Drift    *Report      `json:"drift"`
	Samples  *SampleState `json:"samples,omitempty"`
}

// Quality returns the monitor's state now.
func (m *Monitor) Quality() Quality {
	q := Quality{Model: m.opts.Model, Version: m.opts.Version, Sample: m.opts.Sample,
		Sampled: m.sampled.Load(), Dropped: m.dropped.Load(), Window: m.opts.Window.String()}
	m.mu.Lock()
	if m.baseline != nil {
		s := spanOf(*m.baseline)
		q.Baseline = &s
	}
	var last *window
	if len(m.closed) > 0 {
		last = m.closed[len(m.closed)-1]
	}
	q.Drift = m.report
	m.mu.Unlock()
	if last != nil {
		m.mu.Lock()
		s := last.summary()
		m.mu.Unlock()
		s.Model, s.Version = m.opts.Model, m.opts.Version
		q.Last = &s
	}
	if m.samples != nil {
		st := m.samples.state()
		q.Samples = &st
	}
	return q
}

// Model returns the name and version the monitor watches.
func (m *Monitor) Model() (string, int64) { return m.opts.Model, m.opts.Version }
