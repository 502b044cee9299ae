package deploy

import (
	"errors"
	"fmt"
	"time"
)

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

// current reports whether wake is still model's driver's: a rollout
// started after the one it drove has a driver of its own.
func (e *Engine) current(model string, wake chan struct{}) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wake[model] == wake
}

// drive walks one rollout until it ends or the engine closes. An analysis
// that changed nothing (its state could not be saved) is tried again an
// interval later, not at once.
func (e *Engine) drive(model string, wake chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var tried time.Time // the step start last analysed
	for {
		st, err := e.Get(model)
		if err != nil || st.Done() || !e.current(model, wake) {
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
		due := st.StepStarted.Add(time.Duration(st.Spec.Interval))
		if st.StepStarted.Equal(tried) {
			due = time.Now().Add(time.Duration(st.Spec.Interval))
		}
		timer.Reset(time.Until(due))
		select {
		case <-timer.C:
			tried = st.StepStarted
			e.analyse(model, st)
		case <-wake:
		case <-e.ctx.Done():
			return
		}
	}
}

// reading is what an analysis read of the server, outside the engine's
// lock, for one step.
type reading struct {
	stable, cand VersionMetrics
	digest       string // the candidate's content digest now
	err          error  // the figures could not be read
	res          Result // the verdict on them, when they could
}

// read reads the figures of the step seen is at and judges them.
func (e *Engine) read(model string, seen State) reading {
	spec := seen.Spec
	var r reading
	var err1, err2, err3 error
	r.stable, err1 = e.src.Metrics(model, spec.Stable)
	r.cand, err2 = e.src.Metrics(model, spec.Candidate)
	r.digest, err3 = e.src.Digest(model, spec.Candidate)
	if r.err = errors.Join(err1, err2); r.err != nil {
		return r
	}
	if err3 != nil {
		r.res = Result{Inconclusive, fmt.Sprintf("version %d is not ready: %v", spec.Candidate, err3), map[string]float64{}}
		return r
	}
	var driftStart, driftEnd *DriftMetrics
	if spec.Strategy == Mirror {
		d := e.src.Drift(model, spec.Candidate)
		driftStart, driftEnd = &seen.DriftAtStep, &d
	}
	r.res = spec.Analysis.Analyse(seen.StableAtStep, r.stable, seen.CandidateAtStep, r.cand, driftStart, driftEnd)
	if qs, ok := e.src.(QualitySource); ok && spec.Analysis.MaxOutputDrift > 0 && spec.Strategy != Mirror {
		if d, err := qs.OutputDrift(model, spec.Stable, spec.Candidate, seen.StepStarted); err != nil {
			r.res = Result{Inconclusive, "output drift: " + err.Error(), r.res.Figures}
		} else {
			r.res = spec.Analysis.judgeOutputs(r.res, d)
		}
	}
	return r
}

// analyse judges the step seen is at and moves the rollout on. The
// figures are read and judged outside the engine's lock; the verdict is
// applied only while the rollout is still at seen's revision: a command
// that changed it meanwhile wins, and a verdict on a state that is gone
// is dropped. Before judging, it checks that the window compares figures
// of one process (else restarts the window) and that the candidate is the
// revision the rollout started judging (else stops or restarts it, as
// the spec says).
func (e *Engine) analyse(model string, seen State) {
	r := e.read(model, seen)
	if hook := e.beforeApply.Load(); hook != nil {
		(*hook)(model)
	}
	e.tr.Lock()
	defer e.tr.Unlock()
	cur, err := e.Get(model)
	if err != nil || cur.Revision != seen.Revision || cur.Phase != Progressing {
		e.log.Debug("rollout analysis dropped: the rollout changed while it was judged", "model", model, "judged_revision", seen.Revision)
		return
	}
	spec := cur.Spec
	switch {
	case r.err != nil:
		e.log.Warn("rollout analysis could not read metrics", "model", model, "err", r.err)
		next := cur
		next.StepStarted = time.Now() // another interval, the baselines kept
		e.keep(model, cur, next)
		return
	case r.digest != "" && cur.CandidateDigest != "" && r.digest != cur.CandidateDigest:
		e.candidateChanged(model, cur, r.digest)
		return
	case r.stable.Boot != cur.StableAtStep.Boot || r.cand.Boot != cur.CandidateAtStep.Boot:
		next := with(cur, Event{Kind: WindowRestarted, Reason: "the step's counters started in another process (the server restarted): its window restarts, judged on this process's requests alone"})
		e.restartWindow(model, cur, next)
		return
	}
	res := r.res
	judged := with(cur, Event{Kind: res.Verdict, Reason: res.Reason, Figures: res.Figures})

	last := cur.Step == len(spec.Steps)-1
	switch res.Verdict {
	case Pass:
		switch {
		case spec.Strategy == AB:
			e.restartWindow(model, cur, judged) // an A/B test runs until someone promotes or aborts
		case spec.Strategy == Mirror && last:
			e.end(model, cur, judged, Completed, spec.Stable, "drift within bounds at every step; the shadow never served")
		case last:
			e.end(model, cur, judged, Promoted, spec.Candidate, fmt.Sprintf("every step passed; version %d (%s) now serves all traffic", spec.Candidate, cur.CandidateDigest))
		default:
			i := cur.Step + 1
			next, err := e.atStep(judged, i)
			if err == nil {
				next = with(next, Event{Kind: "step", Reason: spec.Describe(i)})
				p := spec.Policy(i)
				err = e.commit(model, &cur, next, &p)
			}
			if err != nil {
				e.end(model, cur, judged, RolledBack, spec.Stable, err.Error())
			}
		}
	case Fail:
		judged.Failures++
		if judged.Failures >= spec.Analysis.FailureLimit {
			e.end(model, cur, judged, RolledBack, spec.Stable, "analysis failed: "+res.Reason)
			return
		}
		e.restartWindow(model, cur, judged)
	case Inconclusive:
		judged.Inconclusive++
		if judged.Inconclusive >= spec.Analysis.InconclusiveLimit {
			judged.Phase = Paused
			judged = with(judged, Event{Kind: Paused, Reason: fmt.Sprintf("%d inconclusive analyses in a row: promote or abort", spec.Analysis.InconclusiveLimit)})
		} else {
			judged.StepStarted = time.Now() // another interval; the baselines stay, so data accumulates
		}
		e.keep(model, cur, judged)
	}
}

// candidateChanged stops cur, whose candidate's files changed to digest
// since the rollout began judging them, or starts it again from the first
// step with the new revision, as its spec says. The caller holds tr.
func (e *Engine) candidateChanged(model string, cur State, digest string) {
	spec := cur.Spec
	why := fmt.Sprintf("version %d changed from %s to %s during the rollout: the steps so far judged another revision", spec.Candidate, cur.CandidateDigest, digest)
	if spec.OnCandidateChange != OnChangeRestart {
		e.end(model, cur, with(cur, Event{Kind: CandidateChanged, Reason: why}), RolledBack, spec.Stable, why)
		return
	}
	next := with(cur, Event{Kind: CandidateChanged, Reason: why + "; starting again from the first step"})
	next.CandidateDigest, next.Failures = digest, 0
	next, err := e.atStep(next, 0)
	if err == nil {
		next = with(next, Event{Kind: "step", Reason: spec.Describe(0)})
		p := spec.Policy(0)
		if err = e.commit(model, &cur, next, &p); err == nil {
			return
		}
	}
	e.end(model, cur, with(cur, Event{Kind: CandidateChanged, Reason: why}), RolledBack, spec.Stable, fmt.Sprintf("%s, and the first step could not start again: %v", why, err))
}

// keep commits a change that moves no traffic, logging a failure: the
// driver tries again an interval later.
func (e *Engine) keep(model string, prev, next State) {
	if err := e.commit(model, &prev, next, nil); err != nil {
		e.log.Error("rollout state not changed", "model", model, "err", err)
	}
}

// restartWindow begins a fresh analysis window at judged's step.
func (e *Engine) restartWindow(model string, prev, judged State) {
	next, err := e.atStep(judged, judged.Step)
	if err != nil {
		e.log.Warn("rollout analysis could not read metrics", "model", model, "err", err)
		next = judged
		next.StepStarted = time.Now()
	}
	e.keep(model, prev, next)
}

// end ends the rollout in phase with all traffic on version. When the
// traffic cannot move there (the version is gone, the change cannot be
// saved), the rollout pauses instead, traffic unchanged, for a person to
// decide, and its history says why.
func (e *Engine) end(model string, prev, judged State, phase string, version int64, reason string) {
	err := refused("model %q version %d is not loaded and ready", model, version)
	if e.src.VersionReady(model, version) {
		next := judged
		next.Phase = phase
		next = with(next, Event{Kind: phase, Reason: reason})
		p := Weighted(version)
		if err = e.commit(model, &prev, next, &p); err == nil {
			return
		}
	}
	paused := judged
	paused.Phase = Paused
	paused = with(paused, Event{Kind: Paused, Reason: fmt.Sprintf("would have %s (%s), but traffic could not move to version %d: %v; traffic is where it was: promote or abort", phase, reason, version, err)})
	e.keep(model, prev, paused)
}
