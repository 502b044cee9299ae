package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// genParams are one generation request's settings, from any endpoint.
type genParams struct {
	prompt       string
	maxTokens    int
	temperature  float64
	topP         float64
	topK         int
	seed         uint64
	seeded       bool // seed was given; else a random one
	stop         []string
	stream       bool
	includeUsage bool
}

// generation is one sequence being generated and turned into text.
type generation struct {
	g       *runner.Generator
	cancel  context.CancelFunc
	ch      <-chan runner.Token
	p       genParams
	ids     []int64
	text    string // decoded so far, up to any stop string
	prompt  int
	cached  int
	start   time.Time
	encoded time.Duration // tokenizing the prompt
	decoded time.Duration // detokenizing the output
	first   time.Duration // to the first token
	last    time.Time
	finish  string
	metrics *genObservers
}

// startGeneration tokenizes p's prompt and queues it on m's generator.
func (s *Server) startGeneration(ctx context.Context, m *runner.Model, p genParams) (*generation, error) {
	g := m.Generator()
	if g == nil {
		return nil, fmt.Errorf("%w: model %q does not generate text", runner.ErrInvalidInput, m.Metadata().Name)
	}
	if p.maxTokens == 0 {
		p.maxTokens = g.Config().DefaultMaxTokens
	}
	if p.maxTokens < 0 {
		return nil, fmt.Errorf("%w: max_tokens %d, want at least 1", runner.ErrInvalidInput, p.maxTokens)
	}
	if p.temperature < 0 || p.temperature > 10 || p.topP < 0 || p.topP > 1 || p.topK < 0 {
		return nil, fmt.Errorf("%w: temperature %v, top_p %v, top_k %d: want temperature in [0, 10], top_p in [0, 1], top_k of 0 or more", runner.ErrInvalidInput, p.temperature, p.topP, p.topK)
	}
	if !p.seeded {
		p.seed = rand.Uint64()
	}
	start := time.Now()
	ids := g.Encode(p.prompt)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: the prompt has no tokens", runner.ErrInvalidInput)
	}
	encoded := time.Since(start)
	ctx, cancel := context.WithCancel(ctx)
	ch, err := g.Generate(ctx, runner.GenerateRequest{Prompt: ids, MaxTokens: p.maxTokens, Temperature: p.temperature, TopK: p.topK, TopP: p.topP, Seed: p.seed})
	if err != nil {
		cancel()
		if errors.Is(err, runner.ErrTooLong) {
			err = fmt.Errorf("%w: %v", runner.ErrInvalidInput, err)
		}
		return nil, err
	}
	return &generation{g: g, cancel: cancel, ch: ch, p: p, prompt: len(ids), start: start, encoded: encoded, last: start,
		metrics: s.metrics.forGenerator(m)}, nil
}

// next waits for the next token and returns the text it adds; done is
// true once the sequence has ended (finish then says why).
func (gen *generation) next() (delta string, done bool, err error) {
	tok, ok := <-gen.ch
	if !ok {
		return "", true, nil
	}
	now := time.Now()
	if tok.Err != nil {
		gen.cancel()
		return "", true, tok.Err
	}
	if len(gen.ids) == 0 {
		gen.first = now.Sub(gen.start)
		gen.cached = tok.CachedTokens
		gen.metrics.ttft.Observe(gen.first.Seconds())
	} else {
		gen.metrics.itl.Observe(now.Sub(gen.last).Seconds())
	}
	gen.last = now
	gen.metrics.outTokens.Inc()
	gen.ids = append(gen.ids, tok.ID)
	began := time.Now()
	full := gen.g.Decode(gen.ids)
	gen.decoded += time.Since(began)
	if tok.Finish == "stop" || tok.ID < 0 {
		full = gen.text // the end token has no text
	}
	for _, stop := range gen.p.stop {
		if i := strings.Index(full, stop); stop != "" && i >= 0 {
			full, tok.Finish = full[:i], "stop"
		}
	}
	if len(full) >= len(gen.text) && strings.HasPrefix(full, gen.text) {
		delta = full[len(gen.text):]
	}
	gen.text = full
	if tok.Finish != "" {
		gen.finish = tok.Finish
		gen.cancel()
		gen.metrics.promptTokens.Add(float64(gen.prompt))
		return delta, true, nil
	}
	return delta, false, nil
}

// drain runs the generation to its end.
func (gen *generation) drain() error {
	for {
		_, done, err := gen.next()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// serverTiming describes a generation's phases.
func (gen *generation) serverTiming() string {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
	}
	total := time.Since(gen.start)
	return fmt.Sprintf("tokenize;dur=%s, ttft;dur=%s, infer;dur=%s, detokenize;dur=%s, total;dur=%s",
		ms(gen.encoded), ms(gen.first), ms(total-gen.encoded-gen.decoded), ms(gen.decoded), ms(total))
}

func (gen *generation) usage() openAIUsage {
	return openAIUsage{PromptTokens: gen.prompt, CompletionTokens: len(gen.ids), TotalTokens: gen.prompt + len(gen.ids),
		PromptTokensDetails: &tokenDetails{CachedTokens: gen.cached}}
}

// clientGone names a failed write for what it was when the client left.
func clientGone(r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	return err
}

// sse writes server-sent events, flushing each.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (e *sse) send(v any) error {
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// decodeBody reads a JSON body into v, within the server's body limit.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSON(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), v)
}

// decodeJSON reads one JSON value from body into v; errors wrap
// runner.ErrInvalidInput (a 400).
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: an empty body", runner.ErrInvalidInput)
		}
		return fmt.Errorf("%w: request JSON: %v", runner.ErrInvalidInput, err)
	}
	return nil
}

// Triton's generate extension.

type tritonGenerate struct {
	TextInput  string         `json:"text_input"`
	MaxTokens  int            `json:"max_tokens"`
	Stream     bool           `json:"stream"`
	Parameters map[string]any `json:"parameters"`
}

func (t tritonGenerate) params() (genParams, error) {
	p := genParams{prompt: t.TextInput, maxTokens: t.MaxTokens}
	for k, v := range t.Parameters {
		num, isNum := v.(float64)
		switch k {
		case "max_tokens":
			p.maxTokens = int(num)
		case "temperature":
			p.temperature = num
		case "top_p":
			p.topP = num
		case "top_k":
			p.topK = int(num)
		case "seed", "random_seed":
			p.seed, p.seeded = uint64(num), true
		case "stop":
			switch s := v.(type) {
			case string:
				p.stop = []string{s}
			case []any:
				for _, x := range s {
					if str, ok := x.(string); ok {
						p.stop = append(p.stop, str)
					}
				}
			}
			continue
		case "stream":
			continue
		default:
			continue // other parameters are the client's own
		}
		if !isNum {
			return p, fmt.Errorf("%w: parameter %q: want a number", runner.ErrInvalidInput, k)
		}
	}
	return p, nil
}

func (s *Server) serveGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, err := s.generate(w, r)
	s.metrics.recordGeneration(m, r.PathValue("model"), time.Since(start), err)
}

// generate answers Triton's generate and generate_stream, and returns the
// model and the error it answered with, if any.
func (s *Server) generate(w http.ResponseWriter, r *http.Request) (*runner.Model, error) {
	stream := strings.HasSuffix(r.URL.Path, "_stream")
	m, err := s.model(r)
	var req tritonGenerate
	if err == nil {
		err = s.decodeBody(w, r, &req)
	}
	var p genParams
	if err == nil {
		p, err = req.params()
	}
	var gen *generation
	if err == nil {
		gen, err = s.startGeneration(r.Context(), m, p)
	}
	if err != nil {
		s.fail(w, err)
		return m, err
	}
	defer gen.cancel()
	meta := m.Metadata()
	version := strconv.FormatInt(meta.Version, 10)
	if !stream {
		if err := gen.drain(); err != nil {
			s.fail(w, err)
			return m, err
		}
		w.Header().Set("Server-Timing", gen.serverTiming())
		writeJSON(w, http.StatusOK, map[string]any{"model_name": meta.Name, "model_version": version, "text_output": gen.text})
		return m, nil
	}
	events := startSSE(w)
	for {
		delta, done, err := gen.next()
		if err != nil {
			_ = events.send(map[string]string{"error": err.Error()})
			return m, err
		}
		if delta != "" || done {
			ev := map[string]any{"model_name": meta.Name, "model_version": version, "text_output": delta}
			if done {
				ev["finish_reason"] = gen.finish
			}
			if err := events.send(ev); err != nil {
				return m, clientGone(r, err)
			}
		}
		if done {
			return m, nil
		}
	}
}

// The OpenAI-compatible API.

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

func (o openAIRequest) params(chat bool) (genParams, error) {
	var p genParams
	if chat {
		if len(o.Messages) == 0 {
			return p, fmt.Errorf("%w: messages: want at least one", runner.ErrInvalidInput)
		}
		var b strings.Builder
		for _, m := range o.Messages {
			fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
		}
		b.WriteString("assistant:")
		p.prompt = b.String()
	} else {
		prompts, err := stringOrList(o.Prompt, "prompt")
		if err != nil {
			return p, err
		}
		if len(prompts) != 1 {
			return p, fmt.Errorf("%w: prompt: want one string (got %d)", runner.ErrInvalidInput, len(prompts))
		}
		p.prompt = prompts[0]
	}
	if o.N != nil && *o.N != 1 {
		return p, fmt.Errorf("%w: n: only 1 is supported", runner.ErrInvalidInput)
	}
	switch {
	case o.MaxCompl != nil:
		p.maxTokens = *o.MaxCompl
	case o.MaxTokens != nil:
		p.maxTokens = *o.MaxTokens
	}
	if (o.MaxTokens != nil || o.MaxCompl != nil) && p.maxTokens < 1 {
		return p, fmt.Errorf("%w: max_tokens %d, want at least 1", runner.ErrInvalidInput, p.maxTokens)
	}
	if o.Temperature != nil {
		p.temperature = *o.Temperature
	} else {
		p.temperature = 1
	}
	if o.TopP != nil {
		p.topP = *o.TopP
	}
	if o.TopK != nil {
		p.topK = *o.TopK
	}
	if o.Seed != nil {
		p.seed, p.seeded = uint64(*o.Seed), true
	}
	stop, err := stringOrList(o.Stop, "stop")
	if err != nil {
		return p, err
	}
	p.stop, p.stream = stop, o.Stream
	p.includeUsage = o.StreamOpts != nil && o.StreamOpts.IncludeUsage
	return p, nil
}

// openAIError answers in the OpenAI API's error shape.
func openAIError(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	kind := "server_error"
	if status < 500 {
		kind = "invalid_request_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": err.Error(), "type": kind, "code": status}})
}

func (s *Server) serveOpenAIGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, name, err := s.openAIGenerate(w, r)
	s.metrics.recordGeneration(m, name, time.Since(start), err)
}

// openAIGenerate answers a completion or chat completion, and returns the
// model (and the name asked for) and the error it answered with, if any.
func (s *Server) openAIGenerate(w http.ResponseWriter, r *http.Request) (*runner.Model, string, error) {
	chat := strings.HasSuffix(r.URL.Path, "/chat/completions")
	var req openAIRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		openAIError(w, err)
		return nil, "", err
	}
	m, err := s.acquire(r.Context(), req.Model, "")
	if err != nil {
		openAIError(w, err)
		return nil, req.Model, err
	}
	p, err := req.params(chat)
	if err != nil {
		openAIError(w, err)
		return m, req.Model, err
	}
	gen, err := s.startGeneration(r.Context(), m, p)
	if err != nil {
		openAIError(w, err)
		return m, req.Model, err
	}
	defer gen.cancel()
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
	if !p.stream {
		if err := gen.drain(); err != nil {
			openAIError(w, err)
			return m, req.Model, err
		}
		w.Header().Set("Server-Timing", gen.serverTiming())
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": object, "created": created, "model": name,
			"choices": []any{choice(gen.text, gen.finish, false)}, "usage": gen.usage()})
		return m, req.Model, nil
	}
	events := startSSE(w)
	if chat {
		_ = events.send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"role": "assistant"}, "finish_reason": nil}}})
	}
	for {
		delta, done, err := gen.next()
		if err != nil {
			_ = events.send(map[string]any{"error": map[string]any{"message": err.Error(), "type": "server_error"}})
			return m, req.Model, err
		}
		if delta != "" || done {
			var finish any
			if done {
				finish = gen.finish
			}
			if err := events.send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name,
				"choices": []any{choice(delta, finish, true)}}); err != nil {
				return m, req.Model, clientGone(r, err)
			}
		}
		if done {
			break
		}
	}
	if p.includeUsage {
		_ = events.send(map[string]any{"id": id, "object": chunkObject, "created": created, "model": name, "choices": []any{}, "usage": gen.usage()})
	}
	_ = events.send("[DONE]")
	return m, req.Model, nil
}

func (s *Server) serveOpenAIModels(w http.ResponseWriter, _ *http.Request) {
	seen := map[string]bool{}
	data := []map[string]any{}
	for _, st := range s.repo.Index() {
		if st.State != runner.StateReady || seen[st.Name] {
			continue
		}
		seen[st.Name] = true
		data = append(data, map[string]any{"id": st.Name, "object": "model", "created": 0, "owned_by": "infer"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// serveEmbeddings answers /v1/embeddings with a text model's first output,
// one row a string.
func (s *Server) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := s.decodeBody(w, r, &req); err != nil {
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
		m, err = s.acquire(r.Context(), req.Model, "")
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
	resp, _, err := s.run(r.Context(), m, &runner.Request{Inputs: []tensor.Tensor{{Name: in.Name, DataType: tensor.Bytes, Shape: shape, Data: data}}}, 0)
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
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": m.Metadata().Name, "data": out,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}
