package loadgen

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/clock"
)

// Target sends one request and times it.
type Target interface {
	// Do sends one request and fills r: Start and End, the phases it can
	// attribute, and the failure if any (r.Fail, r.FailStatus). It must
	// honour ctx's deadline.
	Do(ctx context.Context, r *Result)
}

// Options shape a run. One of Duration and Requests bounds it.
type Options struct {
	// Schedule paces an open-loop run; nil runs closed loop.
	Schedule Schedule
	// Concurrency is the number of clients of a closed-loop run, or the
	// most requests in flight in an open-loop one (DefaultMaxInFlight when
	// 0): sends beyond it wait, and count as late.
	Concurrency int
	// Duration is how long to run after the warm-up; Requests how many
	// requests to record. The run stops at whichever comes first.
	Duration time.Duration
	Requests uint64
	// Warmup runs the load this long before recording starts.
	Warmup time.Duration
	// Timeout bounds each request (DefaultTimeout when 0).
	Timeout time.Duration
	// Progress, when set, is called about every ProgressEvery while the
	// run goes on.
	Progress func(Progress)
	// Live adds to each Progress a copy of everything recorded so far, for
	// live percentiles (merging it costs a few milliseconds a call).
	Live bool
	// Objectives decide which text generation requests count towards
	// goodput (ttft, tpot, itl, e2e).
	Objectives []Objective
}

// Defaults.
const (
	DefaultMaxInFlight = 4096
	DefaultTimeout     = 30 * time.Second
	ProgressEvery      = time.Second
)

// Progress is a running count, for progress lines.
type Progress struct {
	Elapsed          time.Duration
	Sent, OK, Failed int64
	// Recording is false during the warm-up.
	Recording bool
	// TargetRate is the schedule's rate now (open loop), per second.
	TargetRate float64
	// Recorded holds what was recorded so far (with Options.Live): a copy
	// of the run's own, the receiver's to keep.
	Recorded *Recorder
}

// Summary is a finished run.
type Summary struct {
	*Recorder
	// Open is true for an open-loop run.
	Open bool
	// Window is the recorded stretch: from the end of the warm-up to the
	// last answer.
	Window time.Duration
	// TargetRate is the rate the schedule asked for over the recorded
	// stretch (open loop), in requests per second.
	TargetRate float64
	// Unsent counts the requests an open-loop schedule asked for within
	// the duration that were never sent: the run fell so far behind (no
	// worker free, the in-flight limit reached) that their time came after
	// the end, and nothing is sent after the end.
	Unsent int64
}

// AnsweredRate returns the answered requests per second, failures
// included.
func (s *Summary) AnsweredRate() float64 {
	if s.Window <= 0 {
		return 0
	}
	return float64(s.Count()) / s.Window.Seconds()
}

// SuccessRate returns the successful answers per second.
func (s *Summary) SuccessRate() float64 {
	if s.Window <= 0 {
		return 0
	}
	return float64(s.OK) / s.Window.Seconds()
}

// run is the state of one Run.
type run struct {
	t        Target
	o        Options
	warmEnd  time.Time
	recorded atomic.Uint64 // requests past the warm-up, sent or claimed
	sent     atomic.Int64
	ok       atomic.Int64
	failed   atomic.Int64
	lastEnd  atomic.Int64 // Unix nanoseconds of the last recorded answer
	unsent   int64        // open loop: see Summary.Unsent

	// shards spread recording over a few locked recorders: one per
	// worker would cost each worker a megabyte or two of histograms, and
	// an open loop can run thousands of workers.
	shards []*shard
	nextID atomic.Uint64
}

type shard struct {
	mu  sync.Mutex
	rec *Recorder
}

// Run drives t until the run's bounds or ctx end, and returns what it
// recorded.
func Run(ctx context.Context, t Target, o Options) (*Summary, error) {
	if o.Duration <= 0 && o.Requests == 0 {
		return nil, errors.New("a run needs a duration or a number of requests")
	}
	if o.Schedule != nil {
		if err := Validate(o.Schedule); err != nil {
			return nil, err
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	start := time.Now()
	r := &run{t: t, o: o, warmEnd: start.Add(o.Warmup)}
	for range 2 * runtime.GOMAXPROCS(0) {
		rec := NewRecorder()
		rec.Epoch = r.warmEnd
		rec.Objectives = o.Objectives
		r.shards = append(r.shards, &shard{rec: rec})
	}
	stopProgress := r.progress(ctx, start)
	if o.Schedule != nil {
		r.open(ctx, start)
	} else {
		r.closed(ctx)
	}
	stopProgress()

	sum := &Summary{Recorder: NewRecorder(), Open: o.Schedule != nil, Unsent: r.unsent}
	sum.Epoch = r.warmEnd
	for _, s := range r.shards {
		sum.Merge(s.rec)
	}
	if end := r.lastEnd.Load(); end != 0 {
		sum.Window = time.Unix(0, end).Sub(r.warmEnd)
	}
	if sum.Open && sum.Count() > 0 {
		span := o.Duration
		// A run that stopped early (its context ended, as when q stops a
		// watched run) asked for the rate of the span it ran, not its
		// whole duration.
		if span <= 0 || o.Requests > 0 && uint64(sum.Count()) >= o.Requests || ctx.Err() != nil {
			span = sum.Last.Sub(r.warmEnd) + time.Duration(float64(time.Second)/o.Schedule.Rate(sum.Last.Sub(start)))
		}
		sum.TargetRate = float64(sum.Count()+sum.Unsent) / span.Seconds() // what the schedule asked for
	}
	return sum, ctx.Err()
}

// snapshot merges the shards into a new recorder.
func (r *run) snapshot() *Recorder {
	out := NewRecorder()
	out.Epoch = r.warmEnd
	for _, s := range r.shards {
		s.mu.Lock()
		out.Merge(s.rec)
		s.mu.Unlock()
	}
	return out
}

// newRecorder returns the shard a new worker records into.
func (r *run) newRecorder() *shard {
	return r.shards[r.nextID.Add(1)%uint64(len(r.shards))]
}

// claim reports whether a request intended at t may be sent: always during
// the warm-up, then while the bounds allow.
func (r *run) claim(t time.Time) (record, ok bool) {
	if t.Before(r.warmEnd) {
		return false, true
	}
	if r.o.Duration > 0 && !t.Before(r.warmEnd.Add(r.o.Duration)) {
		return false, false
	}
	if r.o.Requests > 0 && r.recorded.Add(1) > r.o.Requests {
		return false, false
	}
	return true, true
}

// do sends one request intended at intended and records it when asked.
func (r *run) do(ctx context.Context, intended time.Time, record bool, rec *shard) {
	res := Result{Intended: intended}
	rctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	r.sent.Add(1)
	r.t.Do(rctx, &res)
	cancel()
	if res.Err == nil {
		r.ok.Add(1)
	} else {
		r.failed.Add(1)
	}
	if !record {
		return
	}
	res.Finish()
	rec.mu.Lock()
	rec.rec.Record(&res)
	rec.mu.Unlock()
	for end := res.End.UnixNano(); ; {
		last := r.lastEnd.Load()
		if end <= last || r.lastEnd.CompareAndSwap(last, end) {
			break
		}
	}
}

// hit is one scheduled request.
type hit struct {
	intended time.Time
	record   bool
}

// open sends on the schedule, spawning workers as needed up to the
// in-flight limit. Times come from the schedule alone, so a send that
// waited for a worker does not delay the ones after it. It stops at the
// run's end by the clock, not by the schedule: a run that fell behind
// sends nothing after the end, and counts what it never sent; the requests
// in flight then have their timeout to answer.
func (r *run) open(ctx context.Context, start time.Time) {
	limit := r.o.Concurrency
	if limit <= 0 {
		limit = DefaultMaxInFlight
	}
	var end time.Time
	var ended <-chan time.Time
	if r.o.Duration > 0 {
		end = r.warmEnd.Add(r.o.Duration)
		timer := time.NewTimer(time.Until(end))
		defer timer.Stop()
		ended = timer.C
	}
	hits := make(chan hit)
	var wg sync.WaitGroup
	workers := 0
	spawn := func() {
		workers++
		rec := r.newRecorder()
		wg.Go(func() {
			for h := range hits {
				r.do(ctx, h.intended, h.record, rec)
			}
		})
	}
	spawn()
loop:
	for n := uint64(0); ; n++ {
		at := start.Add(r.o.Schedule.At(n))
		record, ok := r.claim(at)
		if !ok {
			break
		}
		if !end.IsZero() && !time.Now().Before(end) {
			r.countUnsent(start, n, record, end)
			break
		}
		clock.SleepUntil(at, ctx.Done())
		if ctx.Err() != nil {
			break
		}
		h := hit{at, record}
		select {
		case hits <- h:
			continue
		default:
		}
		if workers < limit {
			spawn()
		}
		select {
		case hits <- h:
		case <-ctx.Done():
			break loop
		case <-ended:
			r.countUnsent(start, n, record, end)
			break loop
		}
	}
	close(hits)
	wg.Wait()
}

// countUnsent counts the recorded requests the schedule asked for from the
// n-th, already claimed (record says whether it was to be recorded), up to
// the end, which will never be sent.
func (r *run) countUnsent(start time.Time, n uint64, record bool, end time.Time) {
	if record {
		r.unsent++
	}
	for n++; ; n++ {
		at := start.Add(r.o.Schedule.At(n))
		if !at.Before(end) {
			return
		}
		if r.o.Requests > 0 && r.recorded.Add(1) > r.o.Requests {
			return
		}
		if !at.Before(r.warmEnd) {
			r.unsent++
		}
	}
}

// closed runs Concurrency clients, each sending its next request when the
// last is answered.
func (r *run) closed(ctx context.Context) {
	n := max(r.o.Concurrency, 1)
	var wg sync.WaitGroup
	for range n {
		rec := r.newRecorder()
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				record, ok := r.claim(now)
				if !ok {
					return
				}
				r.do(ctx, now, record, rec)
			}
		})
	}
	wg.Wait()
}

// progress calls o.Progress every ProgressEvery until the returned stop.
func (r *run) progress(ctx context.Context, start time.Time) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(ProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				now := time.Now()
				p := Progress{Elapsed: now.Sub(start), Sent: r.sent.Load(), OK: r.ok.Load(), Failed: r.failed.Load(), Recording: !now.Before(r.warmEnd)}
				if r.o.Schedule != nil {
					p.TargetRate = r.o.Schedule.Rate(p.Elapsed)
				}
				if r.o.Live {
					p.Recorded = r.snapshot()
				}
				r.o.Progress(p)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
