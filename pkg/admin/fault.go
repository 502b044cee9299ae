package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
)

// faultJSON is a fault as the admin endpoint reads it.
type faultJSON struct {
	Latency   string  `json:"latency"`
	ErrorRate float64 `json:"error_rate"`
}

// servePutFault sets (PUT) or clears (DELETE) a model version's injected
// fault: {"latency": "50ms", "error_rate": 0.2}. 403 unless the server
// allows fault injection.
func (s *API) servePutFault(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	m, err := s.Resolve(name, r.PathValue("version"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if !s.FaultsAllowed() {
		httpapi.WriteError(w, http.StatusForbidden, errors.New("fault injection is off: start the server with --allow-fault-injection"))
		return
	}
	version := m.Metadata().Version
	if r.Method == http.MethodDelete {
		_ = s.SetFault(name, version, nil)
		w.WriteHeader(http.StatusOK)
		return
	}
	var in faultJSON
	if err := httpapi.DecodeBody(w, r, 1<<16, &in); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("fault: %w", err))
		return
	}
	var f core.Fault
	f.ErrorRate = in.ErrorRate
	if in.Latency != "" {
		if f.Latency, err = time.ParseDuration(in.Latency); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("fault: latency %s is not a duration such as 50ms", protocol.Clip(in.Latency)))
			return
		}
	}
	if err := s.SetFault(name, version, &f); err != nil {
		s.fail(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, in)
}
