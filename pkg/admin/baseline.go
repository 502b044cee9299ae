package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
)

// maxBaselineBytes bounds a baseline sent to the admin API: a baseline of
// a few wide tensors is a few hundred kilobytes.
const maxBaselineBytes = 64 << 20

// BaselineAnswer is the baseline endpoint's answer: the version and the
// span its drift reports now compare with (null after DELETE).
type BaselineAnswer struct {
	Model    string      `json:"model"`
	Version  int64       `json:"version"`
	Baseline *drift.Span `json:"baseline"`
}

// servePutBaseline sets (PUT) or clears (DELETE) the baseline a model
// version's quality monitor compares each closed window with, from then
// on, without a reload:
//
//   - PUT with a baseline file as the body (as `infer monitor baseline`
//     writes it);
//   - PUT ?from_version=N[&last=10m] with no body: version N's live
//     statistics over the last duration (every window it keeps when last
//     is absent), such as a rollout's stable version for its candidate.
//
// 404 when the version is not monitored; 400 naming what is wrong in the
// body or the parameters.
func (s *API) servePutBaseline(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	m, err := s.Resolve(name, r.PathValue("version"))
	if err != nil {
		s.fail(w, err)
		return
	}
	version := m.Metadata().Version
	mon, err := s.MonitorOf(name, version)
	if err != nil {
		httpapi.WriteError(w, http.StatusNotFound, err)
		return
	}
	ans := BaselineAnswer{Model: name, Version: version}
	if r.Method == http.MethodDelete {
		mon.SetBaseline(nil)
		s.Logger().Info("baseline cleared", "model", name, "version", version, "by", who(r))
		httpapi.WriteJSON(w, http.StatusOK, ans)
		return
	}
	var b drift.Summary
	if from := r.URL.Query().Get("from_version"); from != "" {
		var status int
		if b, status, err = s.liveBaseline(name, from, r.URL.Query().Get("last")); err != nil {
			httpapi.WriteError(w, status, err)
			return
		}
	} else {
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBaselineBytes+1))
		switch {
		case err != nil:
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("baseline: %w", err))
			return
		case len(data) > maxBaselineBytes:
			httpapi.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("baseline: over %d MiB", maxBaselineBytes>>20))
			return
		case len(data) == 0:
			httpapi.WriteError(w, http.StatusBadRequest, errors.New("baseline: send a baseline file as the body, or ?from_version=N to take a version's live statistics"))
			return
		}
		if err := protocol.CheckJSON(data); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("baseline: the body %v", err))
			return
		}
		if b, err = drift.ParseSummary(data); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	mon.SetBaseline(&b)
	ans.Baseline = &drift.Span{Start: b.Start, End: b.End, Requests: b.Requests}
	s.Logger().Info("baseline set", "model", name, "version", version, "requests", b.Requests, "by", who(r))
	httpapi.WriteJSON(w, http.StatusOK, ans)
}

// liveBaseline returns the statistics version from of model gathered
// over the last duration (all it keeps when last is empty), with the
// status to answer when it cannot.
func (s *API) liveBaseline(model, from, last string) (drift.Summary, int, error) {
	v, err := strconv.ParseInt(from, 10, 64)
	if err != nil || v < 1 {
		return drift.Summary{}, http.StatusBadRequest, fmt.Errorf("parameter from_version %s: want a version number (1 or more)", protocol.Clip(from))
	}
	var since time.Time
	if last != "" {
		d, err := time.ParseDuration(last)
		if err != nil || d <= 0 {
			return drift.Summary{}, http.StatusBadRequest, fmt.Errorf("parameter last %s: want a positive duration, such as 10m", protocol.Clip(last))
		}
		since = time.Now().Add(-d)
	}
	src, err := s.MonitorOf(model, v)
	if err != nil {
		return drift.Summary{}, http.StatusNotFound, err
	}
	b := src.Summary(since)
	if b.Requests == 0 {
		return drift.Summary{}, http.StatusConflict, fmt.Errorf("version %d sampled no request in that span: send traffic first, or widen last", v)
	}
	return b, http.StatusOK, nil
}
