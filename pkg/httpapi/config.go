package httpapi

import (
	"net/http"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/core"
)

// serveModelConfig answers Triton's model configuration, the same as gRPC
// ModelConfig; infer's own configuration is at .../infer-config.
func (s *API) serveModelConfig(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	body, err := core.TritonConfigJSON(core.TritonModelConfig(m))
	if err != nil {
		s.fail(w, err)
		return
	}
	WriteJSONBody(w, http.StatusOK, body)
}

// serveInferConfig returns infer's own configuration in effect for a
// model version, defaults applied (the keys of config.yaml, as `infer
// models config` prints them), with the graph's inputs and outputs, as
// JSON.
func (s *API) serveInferConfig(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(m.Config().Marshal(), &cfg); err != nil {
		s.fail(w, err)
		return
	}
	meta := m.Metadata()
	cfg["name"], cfg["platform"] = meta.Name, meta.Platform
	cfg["input"], cfg["output"] = TensorMetadata(meta.Inputs), TensorMetadata(meta.Outputs)
	WriteJSON(w, http.StatusOK, cfg)
}
