package loadgen

import (
	"context"
	"errors"
)

// Bench is a benchmark made ready: a target, how to read the server's own
// statistics, and the settings every load it measures shares. Measure
// runs one load and reports it; Capacity runs a sweep of rates or
// searches for the highest rate the server sustains. infer bench is a
// front end to it.
type Bench struct {
	Target Target
	// Stats reads the server's accumulated statistics (nil: none, as
	// for a plain HTTP endpoint): a server that sends no phases with each
	// response (Triton) has its phases taken from what they grew by
	// during a load.
	Stats StatsReader
	// Retrying is Target when it retries (NewRetrying), else nil.
	Retrying *Retrying
	// URL, Model and Protocol name what the reports measured.
	URL, Model, Protocol string
	// Run is every load's options; Schedule and Progress are each
	// load's own.
	Run Options
	// Conns is the closed loop's concurrency (a load at rate 0).
	Conns int
	// Schedule makes an open-loop load's schedule at a rate, in
	// requests a second.
	Schedule func(rate float64) (Schedule, error)
	// Settings are the run's settings as given, copied into each report.
	Settings map[string]string
	// USDPerHour prices the server (0: no cost in the reports).
	USDPerHour float64
}

// Measure runs one load, open loop at rate requests a second or closed
// loop at rate 0, telling watch (when not nil) how it goes, and reports
// it. A load that ctx cut short is reported with ctx's error.
func (b *Bench) Measure(ctx context.Context, rate float64, watch func(Progress)) (Report, error) {
	run := b.Run
	if rate > 0 {
		s, err := b.Schedule(rate)
		if err != nil {
			return Report{}, err
		}
		run.Schedule = s
	} else {
		run.Concurrency = b.Conns
	}
	run.Progress = watch
	var before ServerStats
	haveBefore := false
	if b.Stats != nil {
		var err error
		before, err = b.Stats(ctx)
		haveBefore = err == nil
	}
	var refusedBefore int64
	if b.Retrying != nil {
		_, refusedBefore = b.Retrying.Retries()
	}
	sum, err := Run(ctx, b.Target, run)
	if err != nil && !errors.Is(err, context.Canceled) {
		return Report{}, err
	}
	report := NewReport(sum, b.URL, b.Model, b.Protocol)
	report.Settings = b.Settings
	if b.Retrying != nil {
		_, refused := b.Retrying.Retries()
		report.RetriesRefused = refused - refusedBefore
	}
	if report.ServerReported == 0 && haveBefore {
		if after, err := b.Stats(ctx); err == nil {
			report.ApplyServerStats(after.Minus(before))
		}
	}
	if b.USDPerHour > 0 {
		report.SetPrice(b.USDPerHour)
	}
	return report, ctx.Err()
}

// CapacityOptions say how Capacity looks for a server's capacity: through
// the rates given, or, with FindMax, by FindMax's search from Start up to
// Max (0: no bound) to within Tolerance.
type CapacityOptions struct {
	Rates      []float64
	FindMax    bool
	Start, Max float64
	Tolerance  float64
	// Objectives are what a rate must meet to count as sustained.
	Objectives []Objective
	// Step is told of each load's report as it ends (nil: nothing).
	Step func(Report)
}

// Capacity measures the rates of a sweep, stopping early when ctx ends,
// or searches for the highest sustained rate, and returns every load's
// report in order and the highest rate sustained (0: none). A context
// cut short ends it with the steps so far and no error.
func (b *Bench) Capacity(ctx context.Context, o CapacityOptions) (steps []Report, best float64, err error) {
	measure := func(rate float64) (Report, error) {
		r, err := b.Measure(ctx, rate, nil)
		if err != nil && !errors.Is(err, context.Canceled) {
			return r, err
		}
		steps = append(steps, r)
		if o.Step != nil {
			o.Step(r)
		}
		return r, err
	}
	if o.FindMax {
		best, _, err = FindMax(o.Start, o.Max, o.Tolerance, func(rate float64) (bool, error) {
			r, err := measure(rate)
			if err != nil {
				return false, err
			}
			return Sustained(r, o.Objectives), nil
		})
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return steps, best, err
	}
	for _, rate := range o.Rates {
		r, err := measure(rate)
		if err != nil && !errors.Is(err, context.Canceled) {
			return steps, best, err
		}
		if Sustained(r, o.Objectives) {
			best = max(best, r.TargetRate)
		}
		if err != nil {
			break
		}
	}
	return steps, best, nil
}
