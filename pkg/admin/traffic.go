package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// admin guards the endpoints that change what the server serves, on the
// public port or the admin listener, as authorize decides. The token is
// never logged.
func (s *API) admin(next http.HandlerFunc, public bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if status, err := s.Authorize(r.Header.Get("Authorization"), r.RemoteAddr, r.URL.Path, public); err != nil {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="infer admin"`)
			}
			httpapi.WriteError(w, status, err)
			return
		}
		next(w, r)
	}
}

// who names an admin caller for the log.
func who(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return "token holder at " + r.RemoteAddr
	}
	return r.RemoteAddr
}

func (s *API) serveGetPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if _, err := s.Resolve(name, ""); err != nil {
		s.fail(w, err)
		return
	}
	p, ok := s.Policy(name)
	if !ok { // the default: all to the latest ready version
		m, _ := s.Resolve(name, "")
		p = deploy.Weighted(m.Metadata().Version)
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (s *API) servePutPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if _, err := s.Resolve(name, ""); err != nil {
		s.fail(w, err)
		return
	}
	var p deploy.Policy
	if err := httpapi.DecodeBody(w, r, 1<<20, &p); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("traffic policy: %w", err))
		return
	}
	if err := s.ChangePolicy(name, &p, who(r), false); err != nil {
		status := core.AdminStatus(err)
		if errors.Is(err, core.ErrBadPolicy) {
			status = http.StatusBadRequest // the body named a version not ready
		}
		httpapi.WriteError(w, status, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

func (s *API) serveShadowSummary(w http.ResponseWriter, r *http.Request) {
	sum, ok := s.ShadowSummary(r.PathValue("model"))
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, fmt.Errorf("model %s has mirrored nothing", runner.QuoteName(r.PathValue("model"))))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, sum)
}

func (s *API) serveDeletePolicy(w http.ResponseWriter, r *http.Request) {
	force, err := parseForce(r.URL.Query().Get("force"))
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if err := s.ChangePolicy(r.PathValue("model"), nil, who(r), force); err != nil {
		httpapi.WriteError(w, core.AdminStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// parseForce reads the force query parameter: absent is false.
func parseForce(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	force, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query parameter force=%s: want true or false", protocol.Clip(v))
	}
	return force, nil
}
