package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/generate"
)

// answer is what the OpenAI endpoints answer, as much of it as the field
// table checks.
type answer struct {
	Choices []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Message      struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Tokens      []string             `json:"tokens"`
			TopLogprobs []map[string]float64 `json:"top_logprobs"`
			Content     []struct {
				TopLogprobs []struct {
					Token string `json:"token"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Data []struct {
		ID            string          `json:"id"`
		ContextLength int             `json:"context_length"`
		Embedding     json.RawMessage `json:"embedding"`
	} `json:"data"`
	ID            string `json:"id"`
	ContextLength int    `json:"context_length"`
	Error         *struct {
		Message string  `json:"message"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// text is the first choice's text, completion or chat.
func (a answer) text() string {
	if len(a.Choices) == 0 {
		return ""
	}
	return a.Choices[0].Text + a.Choices[0].Message.Content
}

// streamed joins a stream's text and returns its last event.
func streamed(t *testing.T, r reply) (string, completion) {
	t.Helper()
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("a stream: %d %s %.200s", r.status, r.header.Get("Content-Type"), r.body)
	}
	evs := events(t, r.body)
	var b strings.Builder
	for _, e := range evs {
		for _, c := range e.Choices {
			b.WriteString(c.Text + c.Delta.Content)
		}
	}
	return b.String(), evs[len(evs)-1]
}

// Every documented field of OpenAI's completions, chat completions,
// embeddings and models APIs, sent once: either honoured, its effect
// checked, or refused with a 400 whose message names it and whose param
// is it.
func TestOpenAIEveryField(t *testing.T) {
	s, url := startGenerators(t)
	served, err := s.Repository().Model("tiny-gpt", 1)
	if err != nil {
		t.Fatal(err)
	}
	cat := strconv.FormatInt(generate.Of(served).Encode("cat")[0], 10)

	const prompt = "the cat sat on"
	base := map[string]map[string]any{
		"/v1/completions":      {"model": "tiny-gpt", "prompt": prompt, "max_tokens": 6},
		"/v1/chat/completions": {"model": "tiny-gpt", "messages": []any{map[string]any{"role": "user", "content": "hi"}}, "max_tokens": 6},
		"/v1/embeddings":       {"model": "text-encoder", "input": "a dog"},
	}
	post := func(t *testing.T, path string, fields map[string]any) (reply, answer) {
		t.Helper()
		body := map[string]any{}
		for k, v := range base[path] {
			body[k] = v
		}
		for k, v := range fields {
			body[k] = v
		}
		r := postJSON(t, url+path, body)
		var a answer
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
			if err := json.Unmarshal(r.body, &a); err != nil {
				t.Fatalf("%s %v: %d %.300s: %v", path, fields, r.status, r.body, err)
			}
		}
		return r, a
	}
	ok := func(t *testing.T, path string, fields map[string]any) answer {
		t.Helper()
		r, a := post(t, path, fields)
		if r.status != 200 || len(a.Choices)+len(a.Data) == 0 {
			t.Fatalf("%s %v: %d %.300s", path, fields, r.status, r.body)
		}
		return a
	}
	const compl, chat, emb = "/v1/completions", "/v1/chat/completions", "/v1/embeddings"
	greedy := map[string]string{}
	for _, path := range []string{compl, chat} {
		greedy[path] = ok(t, path, map[string]any{"temperature": 0}).text()
		greedy[path+" long"] = ok(t, path, map[string]any{"temperature": 0, "max_tokens": 24}).text()
	}

	// Checks of an honoured field.
	sameAsGreedy := func(t *testing.T, path string, a answer) {
		if a.text() != greedy[path] {
			t.Errorf("%q, want the greedy %q", a.text(), greedy[path])
		}
	}
	choices := func(n int) func(*testing.T, string, reply, answer) {
		return func(t *testing.T, _ string, _ reply, a answer) {
			if len(a.Choices) != n {
				t.Fatalf("%d choices, want %d", len(a.Choices), n)
			}
			for i, c := range a.Choices {
				if c.Index != i {
					t.Errorf("choice %d has index %d", i, c.Index)
				}
			}
		}
	}
	tokens := func(n int) func(*testing.T, string, reply, answer) {
		return func(t *testing.T, _ string, _ reply, a answer) {
			if a.Usage.CompletionTokens != n || a.Choices[0].FinishReason != "length" {
				t.Errorf("%d tokens, finish %q; want %d and length", a.Usage.CompletionTokens, a.Choices[0].FinishReason, n)
			}
		}
	}
	greedyFor := func(t *testing.T, path string, _ reply, a answer) { sameAsGreedy(t, path, a) }
	penalised := func(t *testing.T, path string, _ reply, a answer) {
		if a.text() == greedy[path+" long"] {
			t.Errorf("%q: the same as without the penalty", a.text())
		}
	}
	stopsAt := func(t *testing.T, path string, _ reply, a answer) {
		want, _, _ := strings.Cut(greedy[path], stopOf(greedy[path]))
		if a.text() != want || a.Choices[0].FinishReason != "stop" {
			t.Errorf("%q (%s), want %q (stop)", a.text(), a.Choices[0].FinishReason, want)
		}
	}
	allCat := func(t *testing.T, _ string, _ reply, a answer) {
		if w := strings.Fields(a.text()); len(w) != 6 || slices.ContainsFunc(w, func(s string) bool { return s != "cat" }) {
			t.Errorf("%q, want cat six times", a.text())
		}
	}
	reproducible := func(t *testing.T, path string, _ reply, a answer) {
		again := ok(t, path, map[string]any{"seed": 42, "temperature": 1})
		other := ok(t, path, map[string]any{"seed": 43, "temperature": 1})
		if again.text() != a.text() || other.text() == a.text() {
			t.Errorf("seed 42: %q then %q; seed 43: %q", a.text(), again.text(), other.text())
		}
	}
	sampled := func(t *testing.T, path string, _ reply, a answer) {
		seeded := ok(t, path, map[string]any{"temperature": 0, "seed": 2})
		if a.text() == greedy[path] || seeded.text() != greedy[path] {
			t.Errorf("temperature 1.5: %q; temperature 0 with a seed: %q; greedy %q", a.text(), seeded.text(), greedy[path])
		}
	}
	streams := func(t *testing.T, path string, r reply, _ answer) {
		if text, _ := streamed(t, r); text != greedy[path] {
			t.Errorf("streamed %q, whole %q", text, greedy[path])
		}
	}
	usageLast := func(t *testing.T, _ string, r reply, _ answer) {
		if _, last := streamed(t, r); last.Usage == nil || last.Usage.CompletionTokens != 6 || len(last.Choices) != 0 {
			t.Errorf("the last chunk %+v, want usage of 6 tokens and no choices", last)
		}
	}
	accepted := func(*testing.T, string, reply, answer) {} // 200 with an answer: a field with no effect on the text

	// Rows whose check counts tokens, or compares texts, decode greedily
	// or with a seed: an unseeded sample may end early at [SEP].

	for _, c := range []struct {
		path, field string
		body        map[string]any
		honoured    func(t *testing.T, path string, r reply, a answer) // nil: refused by name
	}{
		{compl, "model", map[string]any{"model": "nope"}, nil},
		{compl, "model", map[string]any{"model": ""}, nil},
		{compl, "max_tokens", map[string]any{"max_tokens": 4.5}, nil}, // a number where a whole one is due
		{compl, "max_tokens", map[string]any{"max_tokens": "4"}, nil},
		{compl, "prompt", map[string]any{"prompt": []string{prompt, "hello"}, "temperature": 0}, func(t *testing.T, path string, r reply, a answer) {
			choices(2)(t, path, r, a)
			sameAsGreedy(t, path, a)
		}},
		{compl, "prompt", map[string]any{"prompt": []string{}}, nil},
		{compl, "best_of", map[string]any{"best_of": 3, "seed": 5}, func(t *testing.T, path string, r reply, a answer) {
			choices(1)(t, path, r, a)
			if a.Usage.CompletionTokens != 18 {
				t.Errorf("%d completion tokens, want 18: all three generated", a.Usage.CompletionTokens)
			}
		}},
		{compl, "best_of", map[string]any{"best_of": 2, "n": 3}, nil},
		{compl, "echo", map[string]any{"echo": true, "temperature": 0}, func(t *testing.T, path string, _ reply, a answer) {
			if a.text() != prompt+greedy[path] {
				t.Errorf("%q, want %q", a.text(), prompt+greedy[path])
			}
		}},
		{compl, "frequency_penalty", map[string]any{"frequency_penalty": 2, "temperature": 0, "max_tokens": 24}, penalised},
		{compl, "frequency_penalty", map[string]any{"frequency_penalty": 3}, nil},
		{compl, "logit_bias", map[string]any{"logit_bias": map[string]float64{cat: 100}, "temperature": 0}, allCat},
		{compl, "logit_bias", map[string]any{"logit_bias": map[string]float64{"cat": 100}}, nil},
		{compl, "logprobs", map[string]any{"logprobs": 2, "temperature": 0}, func(t *testing.T, _ string, _ reply, a answer) {
			lp := a.Choices[0].Logprobs
			if lp == nil || len(lp.Tokens) != 6 || len(lp.TopLogprobs) != 6 || len(lp.TopLogprobs[0]) == 0 || len(lp.TopLogprobs[0]) > 2 {
				t.Errorf("logprobs %+v, want 6 tokens with up to 2 alternatives", lp)
			}
		}},
		{compl, "logprobs", map[string]any{"logprobs": 6}, nil},
		{compl, "max_tokens", map[string]any{"max_tokens": 3, "temperature": 0}, tokens(3)},
		{compl, "max_tokens", map[string]any{"max_tokens": 0}, nil},
		{compl, "max_tokens", map[string]any{"max_tokens": 5000}, nil},                // past the context
		{compl, "n", map[string]any{"prompt": []string{"a", "b", "c"}, "n": 50}, nil}, // 150 sequences
		{compl, "best_of", map[string]any{"prompt": []string{"a", "b"}, "best_of": 20, "n": 1}, func(t *testing.T, _ string, _ reply, a answer) {
			if len(a.Choices) != 2 {
				t.Errorf("%d choices, want 2", len(a.Choices))
			}
		}},
		{compl, "best_of", map[string]any{"prompt": []string{"a", "b", "c", "d", "e", "f", "g"}, "best_of": 20, "n": 1}, nil}, // 140 sequences
		{compl, "n", map[string]any{"n": 3, "seed": 1}, choices(3)},
		{compl, "n", map[string]any{"n": 0}, nil},
		{compl, "presence_penalty", map[string]any{"presence_penalty": 2, "temperature": 0, "max_tokens": 24}, penalised},
		{compl, "seed", map[string]any{"seed": 42, "temperature": 1}, reproducible},
		{compl, "stop", map[string]any{"stop": stopOf(greedy[compl]), "temperature": 0}, stopsAt},
		{compl, "stop", map[string]any{"stop": []string{"a", "b", "c", "d", "e"}}, nil},
		{compl, "stream", map[string]any{"stream": true, "temperature": 0}, streams},
		{compl, "stream_options", map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true}, "temperature": 0}, usageLast},
		{compl, "stream_options", map[string]any{"stream_options": map[string]any{"include_usage": true}}, nil},
		{compl, "suffix", map[string]any{"suffix": "the end"}, nil},
		{compl, "temperature", map[string]any{"temperature": 1.5, "seed": 2}, sampled},
		{compl, "temperature", map[string]any{"temperature": 2.5}, nil},
		{compl, "top_p", map[string]any{"top_p": 1e-9, "temperature": 1, "seed": 3}, greedyFor},
		{compl, "top_p", map[string]any{"top_p": 1.5}, nil},
		{compl, "top_k", map[string]any{"top_k": 1, "temperature": 1, "seed": 3}, greedyFor},
		{compl, "user", map[string]any{"user": "user-1"}, accepted},
		{compl, "messages", map[string]any{"messages": []any{}}, nil},
		{compl, "colour", map[string]any{"colour": "blue"}, nil},

		{chat, "messages", map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hi"}}}}, "temperature": 0}, greedyFor},
		{chat, "messages[0].content[0].type", map[string]any{"messages": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "input_audio"}}}}}, nil},
		{chat, "messages[0].role", map[string]any{"messages": []any{map[string]any{"role": "tool", "content": "42"}}}, nil},
		{chat, "model", map[string]any{"model": "text-encoder"}, nil},
		{chat, "audio", map[string]any{"audio": map[string]any{"format": "wav", "voice": "alloy"}}, nil},
		{chat, "frequency_penalty", map[string]any{"frequency_penalty": 2, "temperature": 0, "max_tokens": 24}, penalised},
		{chat, "function_call", map[string]any{"function_call": "auto"}, nil},
		{chat, "functions", map[string]any{"functions": []any{map[string]any{"name": "f"}}}, nil},
		{chat, "logit_bias", map[string]any{"logit_bias": map[string]float64{cat: 100}, "temperature": 0}, allCat},
		{chat, "logprobs", map[string]any{"logprobs": true, "top_logprobs": 2, "temperature": 0}, func(t *testing.T, _ string, _ reply, a answer) {
			lp := a.Choices[0].Logprobs
			if lp == nil || len(lp.Content) != 6 || len(lp.Content[5].TopLogprobs) != 2 {
				t.Errorf("logprobs %+v, want 6 tokens with 2 alternatives each", lp)
			}
		}},
		{chat, "logprobs", map[string]any{"logprobs": 1}, nil},
		{chat, "top_logprobs", map[string]any{"top_logprobs": 2}, nil},
		{chat, "top_logprobs", map[string]any{"logprobs": true, "top_logprobs": 21}, nil},
		{chat, "max_completion_tokens", map[string]any{"max_completion_tokens": 3, "temperature": 0}, tokens(3)},
		{chat, "max_tokens", map[string]any{"max_tokens": 4, "temperature": 0}, tokens(4)},
		{chat, "max_tokens", map[string]any{"max_tokens": 5000}, nil}, // past the context
		{chat, "max_completion_tokens", map[string]any{"max_completion_tokens": -5}, nil},
		{chat, "metadata", map[string]any{"metadata": map[string]string{"k": "v"}}, nil},
		{chat, "modalities", map[string]any{"modalities": []string{"text"}}, accepted},
		{chat, "modalities", map[string]any{"modalities": []string{"text", "audio"}}, nil},
		{chat, "n", map[string]any{"n": 2, "seed": 1}, choices(2)},
		{chat, "parallel_tool_calls", map[string]any{"parallel_tool_calls": false}, accepted}, // no tools, so no calls to run in parallel
		{chat, "prediction", map[string]any{"prediction": map[string]any{"type": "content", "content": "x"}}, nil},
		{chat, "presence_penalty", map[string]any{"presence_penalty": 2, "temperature": 0, "max_tokens": 24}, penalised},
		{chat, "prompt_cache_key", map[string]any{"prompt_cache_key": "k"}, accepted}, // the prefix cache matches any prompt by its tokens
		{chat, "reasoning_effort", map[string]any{"reasoning_effort": "low"}, nil},
		{chat, "response_format", map[string]any{"response_format": map[string]any{"type": "text"}, "temperature": 0}, greedyFor},
		{chat, "response_format", map[string]any{"response_format": map[string]any{"type": "json_object"}}, nil},
		{chat, "safety_identifier", map[string]any{"safety_identifier": "s-1"}, accepted},
		{chat, "seed", map[string]any{"seed": 42, "temperature": 1}, reproducible},
		{chat, "service_tier", map[string]any{"service_tier": "auto"}, accepted},
		{chat, "service_tier", map[string]any{"service_tier": "flex"}, nil},
		{chat, "stop", map[string]any{"stop": []string{stopOf(greedy[chat])}, "temperature": 0}, stopsAt},
		{chat, "store", map[string]any{"store": false}, accepted},
		{chat, "store", map[string]any{"store": true}, nil},
		{chat, "stream", map[string]any{"stream": true, "temperature": 0}, streams},
		{chat, "stream_options", map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true}, "temperature": 0}, usageLast},
		{chat, "temperature", map[string]any{"temperature": 1.5, "seed": 2}, sampled},
		{chat, "tool_choice", map[string]any{"tool_choice": "auto"}, nil},
		{chat, "tools", map[string]any{"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "f"}}}}, nil},
		{chat, "top_p", map[string]any{"top_p": 1e-9, "temperature": 1, "seed": 3}, greedyFor},
		{chat, "user", map[string]any{"user": "user-1"}, accepted},
		{chat, "verbosity", map[string]any{"verbosity": "low"}, nil},
		{chat, "web_search_options", map[string]any{"web_search_options": map[string]any{}}, nil},
		{chat, "echo", map[string]any{"echo": true}, nil},
		{chat, "prompt", map[string]any{"prompt": "x"}, nil},

		{emb, "input", map[string]any{"input": []string{"a cat", "a dog"}}, func(t *testing.T, _ string, _ reply, a answer) {
			if len(a.Data) != 2 {
				t.Errorf("%d embeddings, want 2", len(a.Data))
			}
		}},
		{emb, "input", map[string]any{"input": []int{101, 102}}, nil},
		{emb, "model", map[string]any{"model": "tiny-gpt"}, nil},
		{emb, "model", map[string]any{"model": ""}, nil},
		{emb, "encoding_format", map[string]any{"encoding_format": "base64"}, func(t *testing.T, path string, _ reply, a answer) {
			var floats []float32
			if err := json.Unmarshal(ok(t, path, map[string]any{"encoding_format": "float"}).Data[0].Embedding, &floats); err != nil {
				t.Fatal(err)
			}
			var b64 string
			if err := json.Unmarshal(a.Data[0].Embedding, &b64); err != nil {
				t.Fatalf("embedding %s: %v", a.Data[0].Embedding, err)
			}
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || len(raw) != 4*len(floats) {
				t.Fatalf("base64 of %d bytes (%v), want %d", len(raw), err, 4*len(floats))
			}
			for i, f := range floats {
				if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != f {
					t.Fatalf("element %d: %v in base64, %v as floats", i, got, f)
				}
			}
		}},
		{emb, "encoding_format", map[string]any{"encoding_format": "int8"}, nil},
		{emb, "dimensions", map[string]any{"dimensions": 8}, nil},
		{emb, "user", map[string]any{"user": "user-1"}, accepted},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/")+"/"+c.field, func(t *testing.T) {
			r, a := post(t, c.path, c.body)
			if c.honoured != nil {
				if r.status != 200 {
					t.Fatalf("%v: %d %.300s", c.body, r.status, r.body)
				}
				c.honoured(t, c.path, r, a)
				return
			}
			want := 400
			if c.body["model"] == "nope" {
				c.field, want = "nope", 404
			}
			if r.status != want || a.Error == nil || !strings.Contains(a.Error.Message, c.field) {
				t.Fatalf("%v: %d %.300s; want a %d naming %s", c.body, r.status, r.body, want, c.field)
			}
			if want == 400 && (a.Error.Param == nil || *a.Error.Param != c.field) {
				t.Errorf("%v: param %v in %s, want %q", c.body, a.Error.Param, r.body, c.field)
			}
		})
	}

	// A body that is not one JSON object is refused without a param, in
	// JSON's words, never Go's.
	for body, want := range map[string]string{
		``: "the body is empty",
		`{"model":"tiny-gpt","prompt":"hi","max_tokens":2} xyz`:    "more after its JSON object",
		`{"model":"tiny-gpt","prompt":"hi","max_tokens":2}{"a":1}`: "more after its JSON object",
		`{"model":"tiny-gpt","prompt":"hi","max_tokens":[2]}`:      "max_tokens: want a whole number, got array",
		`{"model":"tiny-gpt","prompt":"hi","temperature":"warm"}`:  "temperature: want a number, got string",
	} {
		r := call(t, "POST", url+"/v1/completions", []byte(body), nil)
		if r.status != 400 || !strings.Contains(string(r.body), want) || strings.Contains(string(r.body), "Go ") || strings.Contains(string(r.body), `"param":"the"`) {
			t.Errorf("%q: %d %s, want 400 saying %q", body, r.status, r.body, want)
		}
	}

	// The models API: only models that generate or embed, with their
	// context length; one by id; any other is not found.
	var list answer
	if r := call(t, "GET", url+"/v1/models", nil, nil); r.status != 200 || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	var listed []string
	for _, m := range list.Data {
		listed = append(listed, m.ID)
		if m.ContextLength == 0 {
			t.Errorf("model %s has no context_length", m.ID)
		}
	}
	if slices.Sort(listed); !slices.Equal(listed, []string{"text-encoder", "tiny-gpt"}) {
		t.Errorf("models listed %v, want the generator and the embedder", listed)
	}
	var one answer
	if r := call(t, "GET", url+"/v1/models/tiny-gpt", nil, nil); r.status != 200 || json.Unmarshal(r.body, &one) != nil || one.ID != "tiny-gpt" || one.ContextLength != 512 {
		t.Errorf("model tiny-gpt: %d %s", r.status, r.body)
	}
	if r := call(t, "GET", url+"/v1/models/mlp", nil, nil); r.status != 404 || !strings.Contains(string(r.body), "mlp") {
		t.Errorf("model mlp: %d %s, want a 404 naming it", r.status, r.body)
	}
}

// stopOf picks a stop sequence that a text meets after its start: its
// last three characters.
func stopOf(text string) string {
	r := []rune(text)
	return string(r[max(1, len(r)-3):])
}
