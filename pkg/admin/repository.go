package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
)

func (s *API) serveLoad(w http.ResponseWriter, r *http.Request) {
	if err := loadParameters(r); err != nil {
		httpapi.WriteError(w, core.LoadStatus(err), err)
		return
	}
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

// loadParameters reads a load request's body: none, or Triton's
// {"parameters": {...}}, whose parameters core.CheckLoadParameters
// refuses. A body that is not that is a bad request.
func loadParameters(r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLoadBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("%w: reading the body: %v", protocol.ErrBadRequest, err)
	case len(body) > maxLoadBody:
		return fmt.Errorf("%w: a body of more than %d bytes: model files are not taken in the request", protocol.ErrBadRequest, maxLoadBody)
	case len(bytes.TrimSpace(body)) == 0:
		return nil
	}
	if err := protocol.CheckJSON(body); err != nil {
		return fmt.Errorf("%w: the body %v", protocol.ErrBadRequest, err)
	}
	var req struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("%w: the body: want none, or {\"parameters\": {...}}: %v", protocol.ErrBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) { // dec.More misses a closing bracket
		return fmt.Errorf("%w: the body: more after its JSON object", protocol.ErrBadRequest)
	}
	return core.CheckLoadParameters(slices.Collect(maps.Keys(req.Parameters)))
}

// maxLoadBody bounds a load request's body, in bytes: its parameters are
// refused, so more than a few is no load request this server takes.
const maxLoadBody = 64 << 10
