package core

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/runner"
)

// The server compares its versions' outputs for the rollout engine.
var _ deploy.QualitySource = (*Server)(nil)

// qualityMonitors returns the quality monitors of every loaded version,
// for the drift collector.
func (s *Server) qualityMonitors() []*drift.Monitor {
	var out []*drift.Monitor
	for _, st := range s.repo.Index() {
		if m, err := s.repo.Model(st.Name, st.Version); err == nil && m.Quality() != nil {
			out = append(out, m.Quality())
		}
	}
	return out
}

// monitorOf returns a version's quality monitor, or an error that says
// how to turn one on.
func (s *Server) monitorOf(model string, version int64) (*drift.Monitor, error) {
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
func (s *Server) OutputDrift(model string, stable, candidate int64, since time.Time) (deploy.OutputDrift, error) {
	sm, err1 := s.monitorOf(model, stable)
	cm, err2 := s.monitorOf(model, candidate)
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

// qualityAnswer is GET /v2/models/{m}[/versions/{v}]/quality's answer.
type qualityAnswer struct {
	Model    string          `json:"model"`
	Versions []drift.Quality `json:"versions"`
}

// serveQuality answers a model's quality monitors' state: each monitored
// version's counters, last window's statistics and drift against its
// baseline. With ?since=RFC3339 time it answers instead the statistics of
// one version since then (the windows that ended after it, and the open
// one), in the form of a baseline file.
func (s *Server) serveQuality(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("model"), r.PathValue("version")
	if since := r.URL.Query().Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("parameter since %q: want an RFC 3339 time, such as 2026-01-02T15:04:05Z", since))
			return
		}
		m, err := s.resolve(name, version)
		if err != nil {
			s.fail(w, err)
			return
		}
		q, err := s.monitorOf(name, m.Metadata().Version)
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, q.Summary(t))
		return
	}
	var models []*runner.Model
	if version != "" {
		m, err := s.resolve(name, version)
		if err != nil {
			s.fail(w, err)
			return
		}
		models = append(models, m)
	} else {
		for _, st := range s.repo.Index() {
			if m, err := s.repo.Model(st.Name, st.Version); st.Name == name && err == nil {
				models = append(models, m)
			}
		}
		if len(models) == 0 {
			s.fail(w, fmt.Errorf("%w: model %q has no ready version", runner.ErrModelNotFound, name))
			return
		}
	}
	ans := qualityAnswer{Model: name, Versions: []drift.Quality{}}
	for _, m := range models {
		if q := m.Quality(); q != nil {
			ans.Versions = append(ans.Versions, q.Quality())
		}
	}
	if len(ans.Versions) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("model %q has no version with a quality monitor: set monitor.sample (such as 0.1) in its config.yaml", name))
		return
	}
	writeJSON(w, http.StatusOK, ans)
}
