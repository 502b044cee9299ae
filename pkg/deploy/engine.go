package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Source is what the rollout engine needs of the server it runs in.
type Source interface {
	// Metrics returns a version's cumulative figures.
	Metrics(model string, version int64) (VersionMetrics, error)
	// Drift returns a shadow's cumulative comparisons.
	Drift(model string, version int64) DriftMetrics
	// VersionReady reports whether a version is loaded and ready.
	VersionReady(model string, version int64) bool
	// Smoke sends a version a few requests of its own and fails unless
	// every one is answered.
	Smoke(model string, version int64) error
	// SetPolicy applies a traffic policy.
	SetPolicy(model string, p Policy, by string) error
}

// historyLimit bounds a rollout's kept history (an A/B test can run long).
const historyLimit = 1000

// Engine runs rollouts inside the server: one goroutine each, walking the
// steps, analysing each from the server's metrics, and persisting its state
// after every change, so that a restarted server resumes every rollout at
// its step.
type Engine struct {
	src   Source
	store *Store // nil: rollouts live in memory
	log   *slog.Logger

	mu     sync.Mutex
	states map[string]*State
	wake   map[string]chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewEngine returns an engine over src, resuming the rollouts kept in
// store (nil: none kept).
func NewEngine(src Source, store *Store, log *slog.Logger) (*Engine, error) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{src: src, store: store, log: log, states: map[string]*State{}, wake: map[string]chan struct{}{}, ctx: ctx, cancel: cancel}
	if store == nil {
		return e, nil
	}
	saved, err := store.LoadRollouts()
	if err != nil {
		cancel()
		return nil, err
	}
	for model, st := range saved {
		e.states[model] = &st
		if !st.Done() {
			log.Info("rollout resumed", "model", model, "strategy", st.Spec.Strategy, "step", st.Step, "percent", st.Percent())
			e.startDriver(model)
		}
	}
	return e, nil
}

// Close stops every driver; rollouts in progress resume when an engine
// over the same store starts again.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

// Errors a command can be answered with.
var (
	ErrNoRollout  = errors.New("no rollout")          // the model has none
	ErrInProgress = errors.New("rollout in progress") // the model has one that has not ended
)

// Get returns model's rollout, the last one if it has ended.
func (e *Engine) Get(model string) (State, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.states[model]
	if !ok {
		return State{}, fmt.Errorf("%w of model %q", ErrNoRollout, model)
	}
	return clone(*st), nil
}

func clone(s State) State {
	s.History = append([]Event(nil), s.History...)
	s.Spec.Steps = append([]float64(nil), s.Spec.Steps...)
	return s
}

// Start begins a rollout. The candidate must be loaded and ready.
func (e *Engine) Start(spec Spec, by string) (State, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return State{}, err
	}
	for _, v := range []int64{spec.Stable, spec.Candidate} {
		if !e.src.VersionReady(spec.Model, v) {
			return State{}, fmt.Errorf("model %q version %d is not loaded and ready", spec.Model, v)
		}
	}
	e.mu.Lock()
	if st, ok := e.states[spec.Model]; ok && !st.Done() {
		e.mu.Unlock()
		return State{}, fmt.Errorf("%w: the %s of %q to version %d is %s; abort it first", ErrInProgress, st.Spec.Strategy, spec.Model, st.Spec.Candidate, st.Phase)
	}
	st := &State{Spec: spec, Phase: Progressing}
	e.states[spec.Model] = st
	e.mu.Unlock()

	e.record(spec.Model, Event{Kind: "started", Reason: fmt.Sprintf("%s from version %d to %d, by %s", spec.Strategy, spec.Stable, spec.Candidate, by)})
	if spec.Strategy == BlueGreen {
		if err := e.src.Smoke(spec.Model, spec.Candidate); err != nil {
			e.finish(spec.Model, RolledBack, spec.Stable, fmt.Sprintf("smoke requests to version %d failed: %v", spec.Candidate, err))
			return e.Get(spec.Model)
		}
		e.record(spec.Model, Event{Kind: "step", Reason: fmt.Sprintf("smoke requests answered; all traffic switched to version %d, version %d kept warm", spec.Candidate, spec.Stable)})
	}
	if err := e.enterStep(spec.Model, 0); err != nil {
		return State{}, err
	}
	e.startDriver(spec.Model)
	return e.Get(spec.Model)
}

// enterStep applies step i's policy and opens its analysis window.
func (e *Engine) enterStep(model string, i int) error {
	e.mu.Lock()
	spec := e.states[model].Spec
	e.mu.Unlock()
	if err := e.src.SetPolicy(model, spec.Policy(i), "rollout"); err != nil {
		return fmt.Errorf("step %d: %w", i, err)
	}
	if err := e.openWindow(model, spec, i); err != nil {
		return err
	}
	e.record(model, Event{Kind: "step", Reason: fmt.Sprintf("version %d at %g%%", spec.Candidate, spec.Steps[i])})
	return nil
}

// openWindow starts an analysis window at step i: both versions' figures
// from now on are judged when it closes. A new window breaks a run of
// inconclusive analyses.
func (e *Engine) openWindow(model string, spec Spec, i int) error {
	stable, err1 := e.src.Metrics(model, spec.Stable)
	cand, err2 := e.src.Metrics(model, spec.Candidate)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("step %d: %w", i, err)
	}
	drift := e.src.Drift(model, spec.Candidate)
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.states[model]
	st.Step, st.StepStarted, st.Inconclusive = i, time.Now(), 0
	st.StableAtStep, st.CandidateAtStep, st.DriftAtStep = stable, cand, drift
	return nil
}

// retryLater waits another interval at the same step, keeping the
// baselines, so that data accumulates.
func (e *Engine) retryLater(model string) {
	e.mu.Lock()
	e.states[model].StepStarted = time.Now()
	e.mu.Unlock()
}

// record appends an event and persists the state.
func (e *Engine) record(model string, ev Event) {
	e.mu.Lock()
	st := e.states[model]
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Step, ev.Percent = st.Step, st.Percent()
	st.History = append(st.History, ev)
	if len(st.History) > historyLimit {
		st.History = st.History[len(st.History)-historyLimit:]
	}
	snapshot := clone(*st)
	e.mu.Unlock()
	e.log.Info("rollout", "model", model, "event", ev.Kind, "step", ev.Step, "percent", ev.Percent, "reason", ev.Reason)
	e.persist(model, snapshot)
}

func (e *Engine) persist(model string, st State) {
	if e.store == nil {
		return
	}
	if err := e.store.SaveRollout(model, st); err != nil {
		e.log.Error("rollout state not saved", "model", model, "err", err)
	}
}

// finish ends a rollout in phase, leaving all traffic on version. A
// rollout that has already ended is left alone (a command and the driver
// can race to end it), except that a promotion can be undone.
func (e *Engine) finish(model, phase string, version int64, reason string) {
	e.mu.Lock()
	st := e.states[model]
	undo := st.Phase == Promoted && phase == RolledBack
	if st.Done() && !undo {
		e.mu.Unlock()
		return
	}
	st.Phase = phase
	e.mu.Unlock()
	if err := e.src.SetPolicy(model, Weighted(version), "rollout"); err != nil {
		e.log.Error("rollout could not move traffic", "model", model, "version", version, "err", err)
	}
	e.record(model, Event{Kind: phase, Reason: reason})
	e.poke(model)
}

func (e *Engine) startDriver(model string) {
	e.mu.Lock()
	wake := make(chan struct{}, 1)
	e.wake[model] = wake
	e.mu.Unlock()
	e.wg.Go(func() { e.drive(model, wake) })
}

func (e *Engine) poke(model string) {
	e.mu.Lock()
	w := e.wake[model]
	e.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// drive walks one rollout until it ends or the engine closes.
func (e *Engine) drive(model string, wake chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		st, err := e.Get(model)
		if err != nil || st.Done() {
			return
		}
		if st.Phase == Paused { // a person decides: promote or abort
			select {
			case <-wake:
				continue
			case <-e.ctx.Done():
				return
			}
		}
		timer.Reset(time.Until(st.StepStarted.Add(time.Duration(st.Spec.Interval))))
		select {
		case <-timer.C:
			e.analyse(model, st)
		case <-wake:
		case <-e.ctx.Done():
			return
		}
	}
}

// analyse judges the step st is at and moves the rollout on. A command
// that changed the rollout meanwhile wins: its state is left alone.
func (e *Engine) analyse(model string, st State) {
	spec := st.Spec
	stable, err1 := e.src.Metrics(model, spec.Stable)
	cand, err2 := e.src.Metrics(model, spec.Candidate)
	if err := errors.Join(err1, err2); err != nil {
		e.log.Warn("rollout analysis could not read metrics", "model", model, "err", err)
		e.retryLater(model)
		return
	}
	var driftStart, driftEnd *DriftMetrics
	if spec.Strategy == Mirror {
		d := e.src.Drift(model, spec.Candidate)
		driftStart, driftEnd = &st.DriftAtStep, &d
	}
	res := spec.Analysis.Analyse(st.StableAtStep, stable, st.CandidateAtStep, cand, driftStart, driftEnd)

	e.mu.Lock()
	cur := e.states[model]
	if cur.Phase != st.Phase || cur.Step != st.Step || !cur.StepStarted.Equal(st.StepStarted) {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.record(model, Event{Kind: res.Verdict, Reason: res.Reason, Figures: res.Figures})

	last := st.Step == len(spec.Steps)-1
	switch res.Verdict {
	case Pass:
		switch {
		case spec.Strategy == AB:
			e.restartWindow(model, st) // an A/B test runs until someone promotes or aborts
		case spec.Strategy == Mirror && last:
			e.finish(model, Completed, spec.Stable, "drift within bounds at every step; the shadow never served")
		case last:
			e.finish(model, Promoted, spec.Candidate, "every step passed")
		default:
			if err := e.enterStep(model, st.Step+1); err != nil {
				e.finish(model, RolledBack, spec.Stable, err.Error())
			}
		}
	case Fail:
		e.mu.Lock()
		cur.Failures++
		failed := cur.Failures >= spec.Analysis.FailureLimit
		e.mu.Unlock()
		if failed {
			e.finish(model, RolledBack, spec.Stable, "analysis failed: "+res.Reason)
			return
		}
		e.restartWindow(model, st)
	case Inconclusive:
		e.mu.Lock()
		cur.Inconclusive++
		pause := cur.Inconclusive >= spec.Analysis.InconclusiveLimit
		if pause {
			cur.Phase = Paused
		} else {
			cur.StepStarted = time.Now() // another interval; the baselines stay, so data accumulates
		}
		e.mu.Unlock()
		if pause {
			e.record(model, Event{Kind: Paused, Reason: fmt.Sprintf("%d inconclusive analyses in a row: promote or abort", spec.Analysis.InconclusiveLimit)})
		}
	}
}

// restartWindow begins a fresh analysis window at st's step.
func (e *Engine) restartWindow(model string, st State) {
	if err := e.openWindow(model, st.Spec, st.Step); err != nil {
		e.log.Warn("rollout analysis could not read metrics", "model", model, "err", err)
		e.retryLater(model)
	}
}

// Promote ends a rollout in progress or paused with all traffic on the
// candidate.
func (e *Engine) Promote(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Done() {
			return "", 0, "", fmt.Errorf("the rollout of %q has ended (%s)", model, st.Phase)
		}
		return Promoted, st.Spec.Candidate, "promoted by " + by, nil
	})
}

// Abort ends a rollout in progress or paused with all traffic on the
// stable version.
func (e *Engine) Abort(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Done() {
			return "", 0, "", fmt.Errorf("the rollout of %q has ended (%s)", model, st.Phase)
		}
		return Aborted, st.Spec.Stable, "aborted by " + by, nil
	})
}

// Undo moves all traffic back to the stable version after a promotion;
// the stable version was kept loaded, so this is instant.
func (e *Engine) Undo(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Phase != Promoted {
			return "", 0, "", fmt.Errorf("the rollout of %q is %s, not promoted: nothing to undo", model, st.Phase)
		}
		if !e.src.VersionReady(model, st.Spec.Stable) {
			return "", 0, "", fmt.Errorf("version %d is no longer loaded", st.Spec.Stable)
		}
		return RolledBack, st.Spec.Stable, "undone by " + by, nil
	})
}

func (e *Engine) command(model string, decide func(State) (string, int64, string, error)) (State, error) {
	st, err := e.Get(model)
	if err != nil {
		return State{}, err
	}
	phase, version, reason, err := decide(st)
	if err != nil {
		return State{}, err
	}
	e.finish(model, phase, version, reason)
	return e.Get(model)
}
