// Package admin is infer's admin API over HTTP: repository load and
// unload, traffic policies, shadow summaries, rollouts, fault injection,
// quality baselines, version folders, and Go's profiles. Every call is
// authorized as core.Authorize decides: by bearer token, or by the
// listener it arrives on. The changes themselves are the serving core's.
package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
)

// API serves the admin endpoints of a serving core.
type API struct {
	*core.Core
}

// New returns the admin API of c.
func New(c *core.Core) *API { return &API{Core: c} }

// Register adds the admin endpoints to mux, guarded for the public port
// (public) or the admin listener.
func (s *API) Register(mux *http.ServeMux, public bool) {
	admin := func(h http.HandlerFunc) http.HandlerFunc { return s.admin(h, public) }
	mux.HandleFunc("POST /v2/repository/models/{model}/load", admin(s.serveLoad))
	mux.HandleFunc("POST /v2/repository/models/{model}/unload", admin(s.serveUnload))
	mux.HandleFunc("GET /v2/admin/models/{model}/versions", admin(s.serveVersionFolders))
	mux.HandleFunc("GET /v2/admin/models/{model}/traffic", admin(s.serveGetPolicy))
	mux.HandleFunc("PUT /v2/admin/models/{model}/traffic", admin(s.servePutPolicy))
	mux.HandleFunc("DELETE /v2/admin/models/{model}/traffic", admin(s.serveDeletePolicy))
	mux.HandleFunc("GET /v2/admin/models/{model}/shadow", admin(s.serveShadowSummary))
	mux.HandleFunc("POST /v2/admin/models/{model}/rollout", admin(s.serveStartRollout))
	mux.HandleFunc("GET /v2/admin/models/{model}/rollout", admin(s.serveGetRollout))
	mux.HandleFunc("POST /v2/admin/models/{model}/rollout/{command}", admin(s.serveRolloutCommand))
	mux.HandleFunc("PUT /v2/admin/models/{model}/versions/{version}/fault", admin(s.servePutFault))
	mux.HandleFunc("DELETE /v2/admin/models/{model}/versions/{version}/fault", admin(s.servePutFault))
	mux.HandleFunc("PUT /v2/admin/models/{model}/versions/{version}/baseline", admin(s.servePutBaseline))
	mux.HandleFunc("DELETE /v2/admin/models/{model}/versions/{version}/baseline", admin(s.servePutBaseline))
}

// RegisterProfiles adds Go's profiles (CPU, heap, goroutines, mutexes)
// under /debug/pprof/ to mux, for the admin listener only: a profile
// shows the server's insides.
func (s *API) RegisterProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", s.admin(pprof.Index, false))
	mux.HandleFunc("GET /debug/pprof/profile", s.admin(pprof.Profile, false))
	mux.HandleFunc("GET /debug/pprof/trace", s.admin(pprof.Trace, false))
	mux.HandleFunc("GET /debug/pprof/symbol", s.admin(pprof.Symbol, false))
}

func (s *API) fail(w http.ResponseWriter, err error) { httpapi.Fail(w, s.Logger(), err) }
