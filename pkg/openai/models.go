package openai

import (
	"fmt"
	"net/http"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// modelObject describes a model version for /v1/models: only text
// generators and embedders are OpenAI models. context_length is the most
// tokens it takes (a generator's prompt and output together, an
// embedder's input), as OpenRouter and LM Studio report it.
func modelObject(m *runner.Model) (map[string]any, bool) {
	meta := m.Metadata()
	o := map[string]any{"id": meta.Name, "object": "model", "created": 0, "owned_by": "infer"}
	switch {
	case generate.Of(m) != nil:
		o["context_length"] = generate.Of(m).Config().MaxPositions
	case embeds(m):
		if tc := m.Config().Tokenizer; tc != nil {
			o["context_length"] = tc.MaxLength
		}
	default:
		return nil, false
	}
	return o, true
}

// embeds reports whether m serves /v1/embeddings: a text model (one
// BYTES input) that does not generate.
func embeds(m *runner.Model) bool {
	in := m.Metadata().Inputs
	return len(in) == 1 && in[0].DataType == tensor.Bytes && generate.Of(m) == nil
}

// models returns the newest ready version of each model the OpenAI API
// can serve.
func (s *API) models() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, st := range s.Repository().Index() {
		if st.State != runner.StateReady {
			continue
		}
		m, err := s.Repository().Model(st.Name, st.Version)
		if err != nil {
			continue
		}
		if o, ok := modelObject(m); ok {
			out[st.Name] = o
		}
	}
	return out
}

func (s *API) serveModels(w http.ResponseWriter, _ *http.Request) {
	all := s.models()
	data := make([]map[string]any, 0, len(all))
	for _, st := range s.Repository().Index() { // the repository's order
		if o, ok := all[st.Name]; ok {
			data = append(data, o)
			delete(all, st.Name)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// serveModel answers GET /v1/models/{id}.
func (s *API) serveModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if o, ok := s.models()[id]; ok {
		writeJSON(w, http.StatusOK, o)
		return
	}
	openAIError(w, fmt.Errorf("%w: %s is not a text generator or embedder being served", runner.ErrModelNotFound, runner.QuoteName(id)))
}
