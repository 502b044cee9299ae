package core

import (
	"errors"
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/drift"
)

// The server compares its versions' outputs for the rollout engine.
var _ deploy.QualitySource = (*Core)(nil)

// qualityMonitors returns the quality monitors of every loaded version,
// for the drift collector.
func (s *Core) qualityMonitors() []*drift.Monitor {
	var out []*drift.Monitor
	for _, st := range s.repo.Index() {
		if m, err := s.repo.Model(st.Name, st.Version); err == nil && m.Quality() != nil {
			out = append(out, m.Quality())
		}
	}
	return out
}

// MonitorOf returns a version's quality monitor, or an error that says
// how to turn one on.
func (s *Core) MonitorOf(model string, version int64) (*drift.Monitor, error) {
	m, err := s.repo.Model(model, version)
	if err != nil {
		return nil, err
	}
	q := m.Quality()
	if q == nil {
		return nil, fmt.Errorf("model %q version %d has no quality monitor: set monitor.sample (such as 0.1) in its config.yaml", model, m.Metadata().Version)
	}
	return q, nil
}

// OutputDrift compares the outputs the candidate answered since a time
// with the stable version's over the same time.
func (s *Core) OutputDrift(model string, stable, candidate int64, since time.Time) (deploy.OutputDrift, error) {
	sm, err1 := s.MonitorOf(model, stable)
	cm, err2 := s.MonitorOf(model, candidate)
	if err := errors.Join(err1, err2); err != nil {
		return deploy.OutputDrift{}, err
	}
	ref, cur := sm.Summary(since), cm.Summary(since)
	out := deploy.OutputDrift{StableSamples: ref.Requests, CandidateSamples: cur.Requests}
	if top, ok := drift.Compare(ref, cur, drift.CompareOptions{}).Largest(drift.Output, drift.TestPSI); ok {
		out.PSI, out.Tensor, out.Feature = top.Value, top.Tensor, top.Feature
	}
	return out, nil
}
