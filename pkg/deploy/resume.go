package deploy

import (
	"maps"
)

// resume mends model's saved rollout st when the engine starts, before
// any driver runs. A rollout in progress restarts its step's analysis
// window (the counters the window began from were the earlier process's)
// and applies its step's traffic again, as one transition that says so in
// its history. A paused or ended rollout applies the traffic its state
// calls for again only when the policy in force is not the one its latest
// transition set: the process stopped between saving a transition and
// applying its traffic. Applying a policy twice is harmless, so a crash
// during resume is mended the same way at the next start.
func (e *Engine) resume(model string, st State) {
	e.tr.Lock()
	defer e.tr.Unlock()
	want := st.TrafficPolicy()
	if st.Phase == Progressing {
		next, err := e.atStep(with(st, Event{Kind: Resumed, Reason: "the server restarted: the step's analysis window restarts, the earlier process's counters left out"}), st.Step)
		if err == nil {
			err = e.commit(model, &st, next, &want)
		}
		if err != nil {
			e.log.Error("rollout not resumed at its step; its analysis will retry", "model", model, "err", err)
		}
		return
	}
	cur, ok := e.src.CurrentPolicy(model)
	stale := st.Phase == Paused && (!ok || cur.Rollout != st.Revision) ||
		st.Done() && ok && cur.Rollout != 0 && cur.Rollout < st.Revision
	if !stale {
		return
	}
	want.Rollout = st.Revision
	if err := e.src.SetPolicy(model, want, "rollout resumed"); err != nil {
		e.log.Error("rollout's traffic not applied again after a restart", "model", model, "phase", st.Phase, "err", err)
		return
	}
	e.log.Info("rollout's traffic applied again after a restart", "model", model, "phase", st.Phase, "shares", want.String(), "revision", st.Revision)
}

// TrafficPolicy returns the traffic policy s calls for: its step's while
// in progress or paused; all on the candidate once promoted; all on the
// stable version once rolled back, aborted or completed.
func (s State) TrafficPolicy() Policy {
	switch s.Phase {
	case Progressing, Paused:
		p := s.Spec.Policy(s.Step)
		p.Weights = maps.Clone(p.Weights)
		return p
	case Promoted:
		return Weighted(s.Spec.Candidate)
	}
	return Weighted(s.Spec.Stable)
}
