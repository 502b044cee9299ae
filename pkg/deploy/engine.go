package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// SetPolicy applies a traffic policy, or fails and leaves the one in
	// force as it was.
	SetPolicy(model string, p Policy, by string) error
	// CurrentPolicy returns the traffic policy in force; ok is false when
	// the model has none (the latest ready version serves).
	CurrentPolicy(model string) (p Policy, ok bool)
	// Digest returns the content digest of a loaded version: its revision,
	// which changes when its files are replaced and reloaded.
	Digest(model string, version int64) (string, error)
}

// historyLimit bounds a rollout's kept history (an A/B test can run long).
const historyLimit = 1000

// Engine runs rollouts inside the server: one goroutine each, walking the
// steps, analysing each from the server's metrics, and persisting its state
// with every change, so that a restarted server resumes every rollout at
// its step.
//
// The engine is the rollouts' one writer. Every change of a rollout, by a
// command or by its driver, is one transition, serialised with every
// other: checked against the versions loaded now, given the next revision,
// saved, its traffic policy (tagged with that revision) applied, and only
// then made the rollout's state. A transition that fails at any point
// changes nothing, in memory or on disk. An analysis judges outside the
// lock and applies its verdict only when the rollout is still at the
// revision it judged (compare-and-set): a command that lands meanwhile
// wins, and the verdict is dropped.
//
// A crash between saving a transition and applying its policy is mended
// at the next start (see resume): the policy the saved state calls for is
// applied again, which is idempotent.
type Engine struct {
	src   Source
	store *Store // nil: rollouts live in memory
	log   *slog.Logger

	tr sync.Mutex // serializes transitions
	// beforeApply, when set, is called between an analysis's verdict and
	// its transition (see BeforeApply).
	beforeApply atomic.Pointer[func(model string)]
	// crashAfterSave, when set and true, makes a transition stop between
	// saving its state and applying its traffic, as a process killed there
	// would: the property test restarts the engine after it.
	crashAfterSave func() bool
	crashed        bool // under tr: a transition crashed; no other may run

	mu     sync.Mutex // guards states and wake
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
		if err := st.Check(); err != nil {
			log.Warn("saved rollout skipped: its state does not hold", "model", model, "err", err)
			continue
		}
		e.states[model] = &st
		e.resume(model, st)
		if cur, _ := e.Get(model); !cur.Done() {
			log.Info("rollout resumed", "model", model, "strategy", st.Spec.Strategy, "step", cur.Step+1, "percent", cur.Percent(), "revision", cur.Revision)
			e.startDriver(model)
		}
	}
	return e, nil
}

// BeforeApply sets f to be called after each analysis has judged a step
// and before it takes the engine's lock to apply its verdict: a test or a
// drill lands a command exactly there, where a command and an analysis
// race. nil removes it. Set it before any rollout starts.
func (e *Engine) BeforeApply(f func(model string)) {
	if f == nil {
		e.beforeApply.Store(nil)
		return
	}
	e.beforeApply.Store(&f)
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
	// ErrRefused answers a command that does not fit the rollout as it
	// stands or the versions loaded now (it has ended; the version traffic
	// would move to is not ready). Nothing was changed.
	ErrRefused = errors.New("command refused")
	// ErrInvalidSpec answers a rollout spec that cannot be started.
	ErrInvalidSpec = errors.New("invalid rollout")
)

// errCrashed is a transition stopped by crashAfterSave.
var errCrashed = errors.New("stopped after saving, as if killed")

// refusal is an error that is ErrRefused, worded on its own.
type refusal struct{ msg string }

func (r refusal) Error() string      { return r.msg }
func (refusal) Is(target error) bool { return target == ErrRefused }
func refused(format string, args ...any) error {
	return refusal{fmt.Sprintf(format, args...)}
}

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

// Active returns model's rollout when it has not ended: while it has, the
// model's traffic and loaded versions are the rollout's to change.
func (e *Engine) Active(model string) (State, bool) {
	st, err := e.Get(model)
	if err != nil || st.Done() {
		return State{}, false
	}
	return st, true
}

// Rejected fails, with ErrRefused and the reason, when version is the
// candidate of model's last rollout and that rollout ended rolled back or
// aborted: a version judged unfit that a plain "back to the latest"
// would hand all traffic to.
func (e *Engine) Rejected(model string, version int64) error {
	st, err := e.Get(model)
	if err != nil || st.Spec.Candidate != version || st.Phase != RolledBack && st.Phase != Aborted {
		return nil
	}
	why := ""
	if len(st.History) > 0 {
		why = ": " + st.History[len(st.History)-1].Reason
	}
	return refused("version %d of %q is the candidate of its last rollout, which was %s%s", version, model, st.Phase, why)
}

func clone(s State) State {
	s.History = append([]Event(nil), s.History...)
	s.Spec.Steps = append([]float64(nil), s.Spec.Steps...)
	return s
}

// with returns st with ev appended to its history, stamped with the time
// and st's step.
func with(st State, ev Event) State {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Step, ev.Percent = st.Step, st.Percent()
	st.History = append(append(make([]Event, 0, len(st.History)+1), st.History...), ev)
	if len(st.History) > historyLimit {
		st.History = st.History[len(st.History)-historyLimit:]
	}
	st.fresh++
	return st
}

// atStep returns st at step i, its analysis window opening now: both
// versions' figures from now on are judged when it closes. A new window
// breaks a run of inconclusive analyses.
func (e *Engine) atStep(st State, i int) (State, error) {
	model, spec := st.Spec.Model, st.Spec
	stable, err1 := e.src.Metrics(model, spec.Stable)
	cand, err2 := e.src.Metrics(model, spec.Candidate)
	if err := errors.Join(err1, err2); err != nil {
		return State{}, fmt.Errorf("step %d: reading metrics: %w", i, err)
	}
	st.Step, st.StepStarted, st.Inconclusive = i, time.Now(), 0
	st.StableAtStep, st.CandidateAtStep, st.DriftAtStep = stable, cand, e.src.Drift(model, spec.Candidate)
	return st, nil
}

// commit makes next model's rollout at the revision after prev's (1 for
// the first rollout of a model): next is saved, then policy (nil: traffic
// unchanged), tagged with next's revision, applied, then next kept in
// memory and its new events logged. When saving or applying fails,
// nothing changes: the saved state is put back (prev; nil: none) and the
// error returned. The caller holds tr.
func (e *Engine) commit(model string, prev *State, next State, policy *Policy) error {
	next.Revision = 1
	if prev != nil {
		next.Revision = prev.Revision + 1
	}
	if policy != nil {
		p := *policy
		p.Rollout = next.Revision
		policy = &p
	}
	if e.crashed {
		return errCrashed
	}
	if e.store != nil {
		if err := e.store.SaveRollout(model, next); err != nil {
			return fmt.Errorf("rollout of %q: state not saved, nothing changed: %w", model, err)
		}
	}
	if e.crashAfterSave != nil && e.crashAfterSave() {
		e.crashed = true
		return errCrashed
	}
	if policy != nil {
		if err := e.src.SetPolicy(model, *policy, "rollout"); err != nil {
			e.putBack(model, prev)
			return fmt.Errorf("rollout of %q: traffic not moved, nothing changed: %w", model, err)
		}
	}
	fresh := next.History[len(next.History)-min(next.fresh, len(next.History)):]
	next.fresh = 0
	e.mu.Lock()
	e.states[model] = &next
	e.mu.Unlock()
	for _, ev := range fresh {
		e.log.Info("rollout", "model", model, "event", ev.Kind, "step", ev.Step+1, "percent", ev.Percent, "reason", ev.Reason)
	}
	return nil
}

// putBack restores the saved state of a transition that failed after
// saving.
func (e *Engine) putBack(model string, prev *State) {
	if e.store == nil {
		return
	}
	var err error
	if prev == nil {
		err = e.store.DeleteRollout(model)
	} else {
		err = e.store.SaveRollout(model, *prev)
	}
	if err != nil {
		e.log.Error("rollout state on disk not restored after a failed change", "model", model, "err", err)
	}
}

// Start begins a rollout. Both versions must be loaded and ready.
func (e *Engine) Start(spec Spec, by string) (State, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	e.tr.Lock()
	defer e.tr.Unlock()
	for _, v := range []int64{spec.Stable, spec.Candidate} {
		if !e.src.VersionReady(spec.Model, v) {
			return State{}, fmt.Errorf("%w: model %q version %d is not loaded and ready", ErrInvalidSpec, spec.Model, v)
		}
	}
	var prev *State
	if st, err := e.Get(spec.Model); err == nil {
		if !st.Done() {
			return State{}, fmt.Errorf("%w: the %s of %q to version %d is %s; abort it first", ErrInProgress, st.Spec.Strategy, spec.Model, st.Spec.Candidate, st.Phase)
		}
		prev = &st
	}
	digest, err := e.src.Digest(spec.Model, spec.Candidate)
	if err != nil {
		return State{}, fmt.Errorf("%w: model %q version %d: %w", ErrInvalidSpec, spec.Model, spec.Candidate, err)
	}
	st := with(State{Spec: spec, Phase: Progressing, CandidateDigest: digest},
		Event{Kind: "started", Reason: fmt.Sprintf("%s from version %d to %d (%s), by %s", spec.Strategy, spec.Stable, spec.Candidate, digest, by)})
	if spec.Strategy == BlueGreen {
		if err := e.src.Smoke(spec.Model, spec.Candidate); err != nil {
			// Traffic never left the stable version.
			st.Phase = RolledBack
			st = with(st, Event{Kind: RolledBack, Reason: fmt.Sprintf("smoke requests to version %d failed: %v; traffic left on version %d", spec.Candidate, err, spec.Stable)})
			if err := e.commit(spec.Model, prev, st, nil); err != nil {
				return State{}, err
			}
			return clone(st), nil
		}
		st = with(st, Event{Kind: "step", Reason: fmt.Sprintf("smoke requests answered; all traffic switched to version %d, version %d kept warm", spec.Candidate, spec.Stable)})
	}
	st, err = e.atStep(st, 0)
	if err != nil {
		return State{}, err
	}
	st = with(st, Event{Kind: "step", Reason: spec.Describe(0)})
	p := spec.Policy(0)
	if err := e.commit(spec.Model, prev, st, &p); err != nil {
		return State{}, err
	}
	e.startDriver(spec.Model)
	return clone(st), nil
}

// Promote ends a rollout in progress or paused with all traffic on the
// candidate.
func (e *Engine) Promote(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Done() {
			return "", 0, "", refused("the rollout of %q has ended (%s)", model, st.Phase)
		}
		return Promoted, st.Spec.Candidate, fmt.Sprintf("promoted by %s; version %d (%s) now serves all traffic", by, st.Spec.Candidate, st.CandidateDigest), nil
	})
}

// Abort ends a rollout in progress or paused with all traffic on the
// stable version.
func (e *Engine) Abort(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Done() {
			return "", 0, "", refused("the rollout of %q has ended (%s)", model, st.Phase)
		}
		return Aborted, st.Spec.Stable, "aborted by " + by, nil
	})
}

// Undo moves all traffic back to the stable version after a promotion;
// the stable version was kept loaded, so this is instant.
func (e *Engine) Undo(model, by string) (State, error) {
	return e.command(model, func(st State) (string, int64, string, error) {
		if st.Phase != Promoted {
			return "", 0, "", refused("the rollout of %q is %s, not promoted: nothing to undo", model, st.Phase)
		}
		return RolledBack, st.Spec.Stable, "undone by " + by, nil
	})
}

// command ends model's rollout as decide says, moving all traffic to the
// version it names; when that version is not ready, or the change cannot
// be saved or applied, it answers why and changes nothing.
func (e *Engine) command(model string, decide func(State) (string, int64, string, error)) (State, error) {
	e.tr.Lock()
	defer e.tr.Unlock()
	st, err := e.Get(model)
	if err != nil {
		return State{}, err
	}
	phase, version, reason, err := decide(st)
	if err != nil {
		return State{}, err
	}
	if !e.src.VersionReady(model, version) {
		role := "stable"
		if version == st.Spec.Candidate {
			role = "candidate"
		}
		return State{}, refused("model %q version %d (the rollout's %s version) is not loaded and ready, so traffic cannot move to it: the rollout stays %s and traffic where it was; load version %d again first",
			model, version, role, st.Phase, version)
	}
	next := st
	next.Phase = phase
	next = with(next, Event{Kind: phase, Reason: reason})
	p := Weighted(version)
	if err := e.commit(model, &st, next, &p); err != nil {
		return State{}, err
	}
	e.poke(model)
	return clone(next), nil
}
