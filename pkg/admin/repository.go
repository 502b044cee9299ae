package admin

import (
	"net/http"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
)

func (s *API) serveLoad(w http.ResponseWriter, r *http.Request) {
	if err := s.Load(r.PathValue("model"), who(r)); err != nil {
		httpapi.WriteError(w, core.LoadStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *API) serveUnload(w http.ResponseWriter, r *http.Request) {
	if err := s.Unload(r.PathValue("model"), who(r)); err != nil {
		httpapi.WriteError(w, core.AdminStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
