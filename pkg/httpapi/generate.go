package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// ClientGone names a failed write for what it was when the client left:
// the request's context error, once a look at its connection (where the
// HTTP port's server watches it) finds it closed.
func ClientGone(r *http.Request, err error) error {
	if gone, ok := r.Context().Value(goneKey{}).(*goneWatch); ok {
		gone.check()
	}
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	return err
}

// Streamable refuses a streamed answer to an HTTP/1.0 request (errors
// wrap runner.ErrInvalidInput, a 400): a stream's length is not known
// when it begins, and HTTP/1.0 has no chunked transfer coding (RFC 9112,
// section 7.1: a server must not send it to an HTTP/1.0 client). The
// server's HTTP port could only close-delimit it, which its transport
// does not do.
func Streamable(r *http.Request, field string) error {
	if r.ProtoAtLeast(1, 1) {
		return nil
	}
	return fmt.Errorf("%w: %s: a streamed answer needs HTTP/1.1 (this request is %s, which cannot take a chunked body); ask without streaming, or over HTTP/1.1", runner.ErrInvalidInput, field, r.Proto)
}

// SSE writes server-sent events, flushing each.
type SSE struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// StartSSE answers 200 with an event stream, unbuffered by proxies.
func StartSSE(w http.ResponseWriter) *SSE {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &SSE{w: w, rc: http.NewResponseController(w)}
}

// Send writes v (a string as it is, else as JSON) as one event.
func (e *SSE) Send(v any) error {
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

// tritonGenerate is a generate request: the text generator's inputs at
// the top level (text_input, max_tokens), the request's id, and the
// sampling settings in parameters. Any other key is refused: a sampling
// setting put at the top level would otherwise be dropped without a word.
type tritonGenerate struct {
	RawID      json.RawMessage `json:"id"` // bounded as sent, then decoded by id
	ID         string          `json:"-"`
	TextInput  string          `json:"text_input"`
	MaxTokens  int             `json:"max_tokens"`
	Stream     bool            `json:"stream"`
	Parameters json.RawMessage `json:"parameters"` // counted, then decoded by params
}

// decodeID reads the request's id into ID: a string, or null, of at most
// protocol.MaxRequestIDBytes bytes as sent (escapes counted as written,
// as an infer request's id is): it is echoed in every event of a stream.
func (t *tritonGenerate) decodeID() error {
	if n := len(t.RawID) - len(`""`); n > protocol.MaxRequestIDBytes {
		return fmt.Errorf("%w: id: %d bytes, at most %d", runner.ErrInvalidInput, n, protocol.MaxRequestIDBytes)
	}
	if len(t.RawID) == 0 || string(t.RawID) == "null" {
		return nil
	}
	if err := json.Unmarshal(t.RawID, &t.ID); err != nil {
		return fmt.Errorf("%w: id: want a string", runner.ErrInvalidInput)
	}
	return nil
}

// Bounds on a generate request's parameters, counted before they are
// decoded: decoding makes a map entry or a slice element for every few
// bytes of body (a million empty lists took 19 times their size).
const (
	maxGenerateParameters = 64 // the generator has 7
	maxParameterElements  = 64 // a list's, such as stop's
)

// params are the settings of a generate request. A number parameter
// must be a number, and max_tokens, top_k and seed whole numbers of 64
// bits (a larger max_tokens is refused for the context later, naming it);
// stop a string or a list of strings. Other parameters are the client's
// own.
func (t tritonGenerate) params() (core.GenParams, error) {
	p := core.GenParams{Prompt: t.TextInput, MaxTokens: t.MaxTokens}
	params, err := t.parameters()
	if err != nil {
		return p, err
	}
	for _, k := range slices.Sorted(maps.Keys(params)) { // the first fault named is always the same
		v := params[k]
		var n float64
		var err error
		switch k {
		case "max_tokens":
			n, err = wholeParam(k, v, false)
			p.MaxTokens = int(n)
		case "top_k":
			n, err = wholeParam(k, v, false)
			p.TopK = int(n)
		case "seed", "random_seed":
			n, err = wholeParam(k, v, true)
			p.Seed, p.Seeded = uint64(n), true
		case "temperature":
			p.Temperature, err = numberParam(k, v)
		case "top_p":
			p.TopP, err = numberParam(k, v)
		case "stop":
			p.Stop, err = stopParam(v)
		default:
			// A setting the generator does not have would be dropped
			// without a word ("temprature" sampling at the default).
			err = fmt.Errorf("%w: parameter %s: not a setting of this generator (it takes max_tokens, temperature, top_p, top_k, seed or random_seed, and stop)", runner.ErrInvalidInput, protocol.Clip(k))
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// parameters decodes the request's parameters, an object, once counted:
// its members, and each member's elements when it is a list or object.
func (t tritonGenerate) parameters() (map[string]any, error) {
	if len(t.Parameters) == 0 || string(t.Parameters) == "null" {
		return nil, nil
	}
	if n := protocol.JSONLen(t.Parameters); n > maxGenerateParameters {
		return nil, fmt.Errorf("%w: parameters: %d members, want at most %d", runner.ErrInvalidInput, n, maxGenerateParameters)
	}
	if d := protocol.ShapeOf(t.Parameters).Depth; d > 2 { // an object of numbers, strings and lists of strings (stop)
		return nil, fmt.Errorf("%w: parameters: nested %d deep, want numbers, strings or lists of strings", runner.ErrInvalidInput, d)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(t.Parameters, &raw); err != nil {
		return nil, fmt.Errorf("%w: parameters: want an object", runner.ErrInvalidInput)
	}
	params := make(map[string]any, len(raw))
	for k, r := range raw {
		if n := protocol.JSONLen(r); n > maxParameterElements {
			return nil, fmt.Errorf("%w: parameter %s: %d elements, want at most %d", runner.ErrInvalidInput, protocol.Clip(k), n, maxParameterElements)
		}
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("%w: parameter %s: %v", runner.ErrInvalidInput, protocol.Clip(k), err)
		}
		params[k] = v
	}
	return params, nil
}

// numberParam reads parameter k as a number.
func numberParam(k string, v any) (float64, error) {
	if num, ok := v.(float64); ok {
		return num, nil
	}
	return 0, fmt.Errorf("%w: parameter %q: want a number", runner.ErrInvalidInput, k)
}

// wholeParam reads parameter k as a whole number of 64 bits, of 0 or more
// when unsigned.
func wholeParam(k string, v any, unsigned bool) (float64, error) {
	if num, ok := v.(float64); ok && num == math.Trunc(num) && math.Abs(num) < 1<<63 && !(unsigned && num < 0) {
		return num, nil
	}
	want := "a whole number (64 bits)"
	if unsigned {
		want = "a whole number of 0 or more (64 bits)"
	}
	return 0, fmt.Errorf("%w: parameter %q: %s, want %s", runner.ErrInvalidInput, k, protocol.Clip(fmt.Sprint(v)), want)
}

// stopParam reads the stop parameter: a string or a list of strings.
func stopParam(v any) ([]string, error) {
	switch s := v.(type) {
	case string:
		return []string{s}, nil
	case []any:
		stops := make([]string, 0, len(s))
		for _, x := range s {
			str, ok := x.(string)
			if !ok {
				break
			}
			stops = append(stops, str)
		}
		if len(stops) == len(s) {
			return stops, nil
		}
	}
	return nil, fmt.Errorf("%w: parameter \"stop\": want a string or a list of strings", runner.ErrInvalidInput)
}

// serveGenerate answers Triton's generate extension, whole or streamed,
// and counts the request.
func (s *API) serveGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, err := s.generate(w, r)
	s.RecordGeneration(m, r.PathValue("model"), time.Since(start), err)
}

// generate answers Triton's generate and generate_stream, and returns the
// model and the error it answered with, if any.
func (s *API) generate(w http.ResponseWriter, r *http.Request) (*runner.Model, error) {
	stream := strings.HasSuffix(r.URL.Path, "_stream")
	// Routed as an infer call is: a generator's rollout moves its
	// generate traffic too.
	m, err := s.Route(r.Context(), r.PathValue("model"), r.PathValue("version"), "", r.Header.Get)
	var req tritonGenerate
	if err == nil {
		if err = DecodeBody(w, r, s.opts.MaxBodyBytes, &req); err != nil && strings.Contains(err.Error(), "unknown field") {
			err = fmt.Errorf("%w (the top level holds text_input, max_tokens, stream and id; sampling settings go in parameters)", err)
		}
	}
	if err == nil {
		err = req.decodeID()
	}
	var p core.GenParams
	if err == nil {
		p, err = req.params()
	}
	if err == nil && stream {
		err = Streamable(r, "generate_stream")
	}
	var gen *core.Generation
	if err == nil {
		gen, err = s.StartGeneration(r.Context(), m, p)
	}
	if err != nil {
		s.fail(w, err)
		return m, err
	}
	defer gen.Cancel()
	meta := m.Metadata()
	version := strconv.FormatInt(meta.Version, 10)
	answer := func(text string) map[string]any { // echoing the id, as an infer response does
		a := map[string]any{"model_name": meta.Name, "model_version": version, "text_output": text}
		if req.ID != "" {
			a["id"] = req.ID
		}
		return a
	}
	if !stream {
		if err := gen.Drain(); err != nil {
			s.fail(w, err)
			return m, err
		}
		w.Header().Set("Server-Timing", gen.ServerTiming())
		WriteJSON(w, http.StatusOK, answer(gen.Text))
		return m, nil
	}
	w.Header().Set("Trailer", "Server-Timing") // known only at the end
	events := StartSSE(w)
	for {
		delta, done, err := gen.Next()
		if err != nil {
			_ = events.Send(map[string]string{"error": err.Error()})
			return m, err
		}
		if delta != "" || done {
			ev := answer(delta)
			if done {
				ev["finish_reason"] = gen.Finish
			}
			if err := events.Send(ev); err != nil {
				return m, ClientGone(r, err)
			}
		}
		if done {
			w.Header().Set("Server-Timing", gen.ServerTiming())
			return m, nil
		}
	}
}
