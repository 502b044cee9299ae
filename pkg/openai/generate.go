// Package openai is infer's OpenAI-compatible front end: completions and
// chat completions (whole or streamed as server-sent events) on text
// generators, embeddings on text models, and the model list, in the
// OpenAI API's shapes and error objects, over the serving core.
package openai

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
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
	mux.HandleFunc("POST /v1/completions", s.serveOpenAIGenerate)
	mux.HandleFunc("POST /v1/chat/completions", s.serveOpenAIGenerate)
	mux.HandleFunc("GET /v1/models", s.serveOpenAIModels)
	mux.HandleFunc("POST /v1/embeddings", s.serveEmbeddings)
}

// usage counts a generation's tokens.
func usage(gen *core.Generation) openAIUsage {
	n := gen.OutputTokens()
	return openAIUsage{PromptTokens: gen.PromptTokens, CompletionTokens: n, TotalTokens: gen.PromptTokens + n,
		PromptTokensDetails: &tokenDetails{CachedTokens: gen.CachedTokens}}
}

type openAIUsage struct {
	PromptTokens        int           `json:"prompt_tokens"`
	CompletionTokens    int           `json:"completion_tokens"`
	TotalTokens         int           `json:"total_tokens"`
	PromptTokensDetails *tokenDetails `json:"prompt_tokens_details,omitempty"`
}

type tokenDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type openAIRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt"`
	Messages    []chatMessage   `json:"messages"`
	MaxTokens   *int            `json:"max_tokens"`
	MaxCompl    *int            `json:"max_completion_tokens"`
	Temperature *float64        `json:"temperature"`
	TopP        *float64        `json:"top_p"`
	TopK        *int            `json:"top_k"`
	Seed        *int64          `json:"seed"`
	Stop        json.RawMessage `json:"stop"`
	Stream      bool            `json:"stream"`
	StreamOpts  *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// strings reads a string or a list of strings.
func stringOrList(raw json.RawMessage, field string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("%w: %s: want a string or a list of strings", runner.ErrInvalidInput, field)
	}
	return many, nil
}

func (o openAIRequest) params(chat bool) (core.GenParams, error) {
	var p core.GenParams
	if chat {
		if len(o.Messages) == 0 {
			return p, fmt.Errorf("%w: messages: want at least one", runner.ErrInvalidInput)
		}
		var b strings.Builder
		for _, m := range o.Messages {
			fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
		}
		b.WriteString("assistant:")
		p.Prompt = b.String()
	} else {
		prompts, err := stringOrList(o.Prompt, "prompt")
		if err != nil {
			return p, err
		}
		if len(prompts) != 1 {
			return p, fmt.Errorf("%w: prompt: want one string (got %d)", runner.ErrInvalidInput, len(prompts))
		}
		p.Prompt = prompts[0]
	}
	if o.N != nil && *o.N != 1 {
		return p, fmt.Errorf("%w: n: only 1 is supported", runner.ErrInvalidInput)
	}
	switch {
	case o.MaxCompl != nil:
		p.MaxTokens = *o.MaxCompl
	case o.MaxTokens != nil:
		p.MaxTokens = *o.MaxTokens
	}
	if (o.MaxTokens != nil || o.MaxCompl != nil) && p.MaxTokens < 1 {
		return p, fmt.Errorf("%w: max_tokens %d, want at least 1", runner.ErrInvalidInput, p.MaxTokens)
	}
	if o.Temperature != nil {
		p.Temperature = *o.Temperature
	} else {
		p.Temperature = 1
	}
	if o.TopP != nil {
		p.TopP = *o.TopP
	}
	if o.TopK != nil {
		p.TopK = *o.TopK
	}
	if o.Seed != nil {
		p.Seed, p.Seeded = uint64(*o.Seed), true
	}
	stop, err := stringOrList(o.Stop, "stop")
	if err != nil {
		return p, err
	}
	p.Stop, p.Stream = stop, o.Stream
	p.IncludeUsage = o.StreamOpts != nil && o.StreamOpts.IncludeUsage
	return p, nil
}

// openAIError answers in the OpenAI API's error shape.
func openAIError(w http.ResponseWriter, err error) {
	status := core.Status(err)
	kind := "server_error"
	if status < 500 {
		kind = "invalid_request_error"
	}
	httpapi.WriteJSON(w, status, map[string]any{"error": map[string]any{"message": err.Error(), "type": kind, "code": status}})
}

func (s *API) serveOpenAIGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, name, err := s.openAIGenerate(w, r)
	s.RecordGeneration(m, name, time.Since(start), err)
}

// openAIGenerate answers a completion or chat completion, and returns the
// model (and the name asked for) and the error it answered with, if any.
func (s *API) openAIGenerate(w http.ResponseWriter, r *http.Request) (*runner.Model, string, error) {
	chat := strings.HasSuffix(r.URL.Path, "/chat/completions")
	var req openAIRequest
	if err := httpapi.DecodeBody(w, r, s.maxBody, &req); err != nil {
		openAIError(w, err)
		return nil, "", err
	}
	m, err := s.Acquire(r.Context(), req.Model, "")
	if err != nil {
		openAIError(w, err)
		return nil, req.Model, err
	}
	p, err := req.params(chat)
	if err != nil {
		openAIError(w, err)
		return m, req.Model, err
	}
	gen, err := s.StartGeneration(r.Context(), m, p)
	if err != nil {
		openAIError(w, err)
		return m, req.Model, err
	}
	defer gen.Cancel()
	id := fmt.Sprintf("cmpl-%016x", rand.Uint64())
	object, chunkObject := "text_completion", "text_completion"
	if chat {
		id = "chat" + id
		object, chunkObject = "chat.completion", "chat.completion.chunk"
	}
	created := time.Now().Unix()
	name := m.Metadata().Name
	choice := func(text string, finish any, delta bool) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish}
		switch {
		case !chat:
			c["text"] = text
		case delta:
			c["delta"] = map[string]string{"content": text}
		default:
			c["message"] = map[string]string{"role": "assistant", "content": text}
		}
		return c
	}
	if !p.Stream {
		if err := gen.Drain(); err != nil {
			openAIError(w, err)
			return m, req.Model, err
		}
		w.Header().Set("Server-Timing", gen.ServerTiming())
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "object": object, "created": created, "model": name,
			"choices": []any{choice(gen.Text, gen.Finish, false)}, "usage": usage(gen)})
		return m, req.Model, nil
	}
	events := httpapi.StartSSE(w)
	if chat {
		_ = events.Send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"role": "assistant"}, "finish_reason": nil}}})
	}
	for {
		delta, done, err := gen.Next()
		if err != nil {
			_ = events.Send(map[string]any{"error": map[string]any{"message": err.Error(), "type": "server_error"}})
			return m, req.Model, err
		}
		if delta != "" || done {
			var finish any
			if done {
				finish = gen.Finish
			}
			if err := events.Send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name,
				"choices": []any{choice(delta, finish, true)}}); err != nil {
				return m, req.Model, httpapi.ClientGone(r, err)
			}
		}
		if done {
			break
		}
	}
	if p.IncludeUsage {
		_ = events.Send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name, "choices": []any{}, "usage": usage(gen)})
	}
	_ = events.Send("[DONE]")
	return m, req.Model, nil
}

func (s *API) serveOpenAIModels(w http.ResponseWriter, _ *http.Request) {
	seen := map[string]bool{}
	data := []map[string]any{}
	for _, st := range s.Repository().Index() {
		if st.State != runner.StateReady || seen[st.Name] {
			continue
		}
		seen[st.Name] = true
		data = append(data, map[string]any{"id": st.Name, "object": "model", "created": 0, "owned_by": "infer"})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// serveEmbeddings answers /v1/embeddings with a text model's first output,
// one row a string.
func (s *API) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := httpapi.DecodeBody(w, r, s.maxBody, &req); err != nil {
		openAIError(w, err)
		return
	}
	texts, err := stringOrList(req.Input, "input")
	if err == nil && len(texts) == 0 {
		err = fmt.Errorf("%w: input: want a string or a list of strings", runner.ErrInvalidInput)
	}
	if err == nil && req.EncodingFormat != "" && req.EncodingFormat != "float" {
		err = fmt.Errorf("%w: encoding_format %q: only float is supported", runner.ErrInvalidInput, req.EncodingFormat)
	}
	var m *runner.Model
	if err == nil {
		m, err = s.Acquire(r.Context(), req.Model, "")
	}
	if err == nil {
		if in := m.Metadata().Inputs; len(in) != 1 || in[0].DataType != tensor.Bytes || m.Generator() != nil {
			err = fmt.Errorf("%w: model %q does not embed text (it takes no single text input)", runner.ErrInvalidInput, req.Model)
		}
	}
	if err != nil {
		openAIError(w, err)
		return
	}
	var data []byte
	tokens := 0
	for _, t := range texts {
		data = tensor.AppendUint(data, uint64(len(t)), 4)
		data = append(data, t...)
		n, _ := m.TextTokens(t)
		tokens += n
	}
	in := m.Metadata().Inputs[0]
	shape := []int64{int64(len(texts))}
	if len(in.Shape) == 2 {
		shape = append(shape, 1)
	}
	resp, _, err := s.Run(r.Context(), m, &runner.Request{Inputs: []tensor.Tensor{{Name: in.Name, DataType: tensor.Bytes, Shape: shape, Data: data}}}, 0)
	if err == nil && (len(resp.Outputs) == 0 || resp.Outputs[0].DataType != tensor.FP32 || len(resp.Outputs[0].Shape) != 2) {
		err = fmt.Errorf("model %q's first output is not FP32 [n, dim]", req.Model)
	}
	if err != nil {
		openAIError(w, err)
		return
	}
	values, _ := tensor.Values[float32](resp.Outputs[0])
	dim := int(resp.Outputs[0].Shape[1])
	out := make([]map[string]any, len(texts))
	for i := range texts {
		out[i] = map[string]any{"object": "embedding", "index": i, "embedding": values[i*dim : (i+1)*dim]}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "model": m.Metadata().Name, "data": out,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}
