package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// QualityAnswer is GET /v2/models/{m}[/versions/{v}]/quality's answer.
type QualityAnswer struct {
	Model    string          `json:"model"`
	Versions []drift.Quality `json:"versions"`
}

// serveQuality answers a model's quality monitors' state: each monitored
// version's counters, last window's statistics and drift against its
// baseline. With ?since=RFC3339 time it answers instead the statistics of
// one version since then (the windows that ended after it, and the open
// one), in the form of a baseline file.
func (s *API) serveQuality(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("model"), r.PathValue("version")
	if since := r.URL.Query().Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("parameter since %s: want an RFC 3339 time, such as 2026-01-02T15:04:05Z", protocol.Clip(since)))
			return
		}
		m, err := s.Resolve(name, version)
		if err != nil {
			s.fail(w, err)
			return
		}
		q, err := s.MonitorOf(name, m.Metadata().Version)
		if err != nil {
			WriteError(w, http.StatusNotFound, err)
			return
		}
		WriteJSON(w, http.StatusOK, q.Summary(t))
		return
	}
	var models []*runner.Model
	if version != "" {
		m, err := s.Resolve(name, version)
		if err != nil {
			s.fail(w, err)
			return
		}
		models = append(models, m)
	} else {
		for _, st := range s.Repository().Index() {
			if m, err := s.Repository().Model(st.Name, st.Version); st.Name == name && err == nil {
				models = append(models, m)
			}
		}
		if len(models) == 0 {
			s.fail(w, fmt.Errorf("%w: model %s has no ready version", runner.ErrModelNotFound, runner.QuoteName(name)))
			return
		}
	}
	ans := QualityAnswer{Model: name, Versions: []drift.Quality{}}
	for _, m := range models {
		if q := m.Quality(); q != nil {
			ans.Versions = append(ans.Versions, q.Quality())
		}
	}
	if len(ans.Versions) == 0 {
		WriteError(w, http.StatusNotFound, fmt.Errorf("model %s has no version with a quality monitor: set monitor.sample (such as 0.1) in its config.yaml", runner.QuoteName(name)))
		return
	}
	WriteJSON(w, http.StatusOK, ans)
}
