package admin

import (
	"fmt"
	"net/http"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
)

func (s *API) serveStartRollout(w http.ResponseWriter, r *http.Request) {
	var spec deploy.Spec
	if err := httpapi.DecodeBody(w, r, 1<<20, &spec); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("rollout spec: %w", err))
		return
	}
	spec.Model = r.PathValue("model")
	st, err := s.Rollouts().Start(spec, who(r))
	if err != nil {
		httpapi.WriteError(w, core.AdminStatus(err), err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, st)
}

func (s *API) serveGetRollout(w http.ResponseWriter, r *http.Request) {
	st, err := s.Rollouts().Get(r.PathValue("model"))
	if err != nil {
		httpapi.WriteError(w, http.StatusNotFound, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}

func (s *API) serveRolloutCommand(w http.ResponseWriter, r *http.Request) {
	model, by := r.PathValue("model"), who(r)
	var (
		st  deploy.State
		err error
	)
	switch r.PathValue("command") {
	case "promote":
		st, err = s.Rollouts().Promote(model, by)
	case "abort":
		st, err = s.Rollouts().Abort(model, by)
	case "undo":
		st, err = s.Rollouts().Undo(model, by)
	default:
		httpapi.WriteError(w, http.StatusNotFound, fmt.Errorf("rollout command %s: want promote, abort or undo", protocol.Clip(r.PathValue("command"))))
		return
	}
	if err != nil {
		httpapi.WriteError(w, core.AdminStatus(err), err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
}
