// Package openai is infer's OpenAI-compatible front end: completions and
// chat completions (whole or streamed as server-sent events) on text
// generators, embeddings on text models, and the models list, in the
// OpenAI API's shapes and error objects. It only translates: generation
// is package generate's, reached through the serving core. Every field
// of those APIs is honoured or refused with a 400 naming it.
package openai

import (
	"net/http"

	"github.com/infer-serving/infer/pkg/core"
)

// API serves the OpenAI-compatible endpoints of a serving core.
type API struct {
	*core.Core
	maxBody int64
}

// New returns the OpenAI-compatible API of c; maxBodyBytes bounds a
// request body, in bytes.
func New(c *core.Core, maxBodyBytes int64) *API { return &API{Core: c, maxBody: maxBodyBytes} }

// Register adds the endpoints to mux.
func (s *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/completions", s.serveGenerate)
	mux.HandleFunc("POST /v1/chat/completions", s.serveGenerate)
	mux.HandleFunc("GET /v1/models", s.serveModels)
	mux.HandleFunc("GET /v1/models/{id...}", s.serveModel)
	mux.HandleFunc("POST /v1/embeddings", s.serveEmbeddings)
}
