package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// copyModel copies a model folder into a repository folder.
func copyModel(t *testing.T, src, repo string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(src), p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(repo, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(repo, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startGenerators serves tiny-gpt and the text encoder.
func startGenerators(t *testing.T) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	copyModel(t, filepath.Join(bundled, "tiny-gpt"), dir)
	copyModel(t, filepath.Join(bundled, "text-encoder"), dir)
	repo, err := runner.Open(dir, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, hs := start(t, repo, Options{})
	return s, hs.URL
}

func postJSON(t *testing.T, url string, body any) reply {
	t.Helper()
	b, _ := json.Marshal(body)
	return call(t, "POST", url, b, map[string]string{"Content-Type": "application/json"})
}

type completion struct {
	Choices []struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Delta        struct {
			Content string `json:"content"`
		} `json:"delta"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// events parses a server-sent event stream strictly: every event one
// "data: " line and a blank line, JSON until the final [DONE].
func events(t *testing.T, body []byte) []completion {
	t.Helper()
	var out []completion
	sc := bufio.NewScanner(bytes.NewReader(body))
	done := false
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an event line: %q", line)
		}
		if !sc.Scan() || sc.Text() != "" {
			t.Fatalf("event %q is not followed by a blank line", line)
		}
		if done {
			t.Fatalf("an event after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c completion
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		out = append(out, c)
	}
	if !done {
		t.Fatal("the stream does not end with [DONE]")
	}
	return out
}

// A streamed completion is well formed, ends with [DONE], and says, piece
// by piece, what the same request says at once.
func TestCompletionsStreamAndWhole(t *testing.T) {
	s, url := startGenerators(t)
	req := map[string]any{"model": "tiny-gpt", "prompt": "the quick brown fox", "max_tokens": 12, "temperature": 0}
	r := postJSON(t, url+"/v1/completions", req)
	var whole completion
	if r.status != 200 || json.Unmarshal(r.body, &whole) != nil || len(whole.Choices) != 1 {
		t.Fatalf("completion: %d %s", r.status, r.body)
	}
	if u := whole.Usage; u == nil || u.CompletionTokens != 12 || u.PromptTokens < 4 || u.TotalTokens != u.PromptTokens+12 || whole.Choices[0].FinishReason != "length" {
		t.Fatalf("completion usage %+v, finish %q", whole.Usage, whole.Choices[0].FinishReason)
	}
	if !strings.Contains(r.header.Get("Server-Timing"), "preprocess;dur=") || !strings.Contains(r.header.Get("Server-Timing"), "postprocess;dur=") {
		t.Fatalf("Server-Timing %q lacks preprocess (tokenizing) and postprocess (detokenizing)", r.header.Get("Server-Timing"))
	}

	req["stream"], req["stream_options"] = true, map[string]any{"include_usage": true}
	r = postJSON(t, url+"/v1/completions", req)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %v", r.status, r.header)
	}
	evs := events(t, r.body)
	var text strings.Builder
	finish := ""
	for _, e := range evs[:len(evs)-1] {
		text.WriteString(e.Choices[0].Text)
		if e.Choices[0].FinishReason != "" {
			finish = e.Choices[0].FinishReason
		}
	}
	if text.String() != whole.Choices[0].Text || finish != "length" {
		t.Fatalf("streamed %q (%q), at once %q", text.String(), finish, whole.Choices[0].Text)
	}
	if last := evs[len(evs)-1]; last.Usage == nil || last.Usage.CompletionTokens != 12 || len(last.Choices) != 0 {
		t.Fatalf("the usage chunk: %+v", last)
	}

	// A stop string ends the text before it.
	runes := []rune(whole.Choices[0].Text)
	cut := string(runes[len(runes)/2:])
	r = postJSON(t, url+"/v1/completions", map[string]any{"model": "tiny-gpt", "prompt": "the quick brown fox", "max_tokens": 12, "temperature": 0, "stop": cut})
	var stopped completion
	if json.Unmarshal(r.body, &stopped) != nil || stopped.Choices[0].FinishReason != "stop" || !strings.HasPrefix(whole.Choices[0].Text, stopped.Choices[0].Text) || strings.Contains(stopped.Choices[0].Text, cut) {
		t.Fatalf("stop %q: %s", cut, r.body)
	}

	m := scrape(t, s)
	for _, want := range []string{`infer_time_to_first_token_seconds_count{model="tiny-gpt",version="1"} 3`, `infer_tokens_total{kind="output",model="tiny-gpt",version="1"}`,
		`infer_sequences{model="tiny-gpt",state="running",version="1"}`, `infer_kv_cache_bytes{model="tiny-gpt",version="1"}`, `infer_prefix_cache_blocks_total`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestChatAndTritonGenerate(t *testing.T) {
	_, url := startGenerators(t)
	r := postJSON(t, url+"/v1/chat/completions", map[string]any{"model": "tiny-gpt", "messages": []map[string]string{{"role": "user", "content": "hello"}},
		"max_tokens": 6, "seed": 42, "temperature": 0.8})
	var chat completion
	if r.status != 200 || json.Unmarshal(r.body, &chat) != nil || chat.Choices[0].Message.Content == "" {
		t.Fatalf("chat: %d %s", r.status, r.body)
	}
	r = postJSON(t, url+"/v1/chat/completions", map[string]any{"model": "tiny-gpt", "messages": []map[string]string{{"role": "user", "content": "hello"}},
		"max_tokens": 6, "seed": 42, "temperature": 0.8, "stream": true})
	var streamed strings.Builder
	for _, e := range events(t, r.body) {
		streamed.WriteString(e.Choices[0].Delta.Content)
	}
	if streamed.String() != chat.Choices[0].Message.Content {
		t.Fatalf("chat streamed %q, at once %q (same seed)", streamed.String(), chat.Choices[0].Message.Content)
	}

	r = postJSON(t, url+"/v2/models/tiny-gpt/generate", map[string]any{"text_input": "hello world", "parameters": map[string]any{"max_tokens": 6, "temperature": 0}})
	var gen struct {
		TextOutput string `json:"text_output"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &gen) != nil || gen.TextOutput == "" {
		t.Fatalf("generate: %d %s", r.status, r.body)
	}
	r = postJSON(t, url+"/v2/models/tiny-gpt/generate_stream", map[string]any{"text_input": "hello world", "parameters": map[string]any{"max_tokens": 6, "temperature": 0}})
	var pieces strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct {
				TextOutput string `json:"text_output"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("generate_stream event %q: %v", data, err)
			}
			pieces.WriteString(ev.TextOutput)
		}
	}
	if pieces.String() != gen.TextOutput {
		t.Fatalf("generate_stream %q, generate %q", pieces.String(), gen.TextOutput)
	}
	// The request's id is echoed, as an infer response echoes it.
	r = postJSON(t, url+"/v2/models/tiny-gpt/generate", map[string]any{"text_input": "hello world", "id": "req-7", "parameters": map[string]any{"max_tokens": 2}})
	var withID struct{ ID string }
	if r.status != 200 || json.Unmarshal(r.body, &withID) != nil || withID.ID != "req-7" {
		t.Fatalf("generate with an id: %d %s, want the id echoed", r.status, r.body)
	}
	// A sampling setting at the top level is refused, naming it, rather
	// than dropped for greedy output without a word.
	r = postJSON(t, url+"/v2/models/tiny-gpt/generate", map[string]any{"text_input": "hello world", "temperature": 1, "id": "7"})
	if r.status != 400 || !strings.Contains(string(r.body), `unknown field \"temperature\"`) || !strings.Contains(string(r.body), "go in parameters") {
		t.Fatalf("temperature at the top level: %d %s, want 400 naming it", r.status, r.body)
	}
}

// /v1/embeddings answers with the text encoder's own embeddings.
func TestEmbeddingsEndpoint(t *testing.T) {
	_, url := startGenerators(t)
	r := postJSON(t, url+"/v1/embeddings", map[string]any{"model": "text-encoder", "input": []string{"a cat", "a dog"}})
	var emb struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &emb) != nil || len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 128 || emb.Usage.PromptTokens == 0 {
		t.Fatalf("embeddings: %d %.300s", r.status, r.body)
	}
	var data []byte
	data = tensor.AppendUint(data, 5, 4)
	data = append(data, "a dog"...)
	rep, resp := infer(t, url, "text-encoder", &protocol.InferRequest{Inputs: []tensor.Tensor{{Name: "text", DataType: tensor.Bytes, Shape: []int64{1}, Data: data}}}, true)
	if rep.status != 200 {
		t.Fatalf("infer: %d %s", rep.status, rep.body)
	}
	want, _ := tensor.Values[float32](resp.Outputs[0])
	for i := range want {
		if d := want[i] - emb.Data[1].Embedding[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("element %d: %v by /v1/embeddings, %v by infer", i, emb.Data[1].Embedding[i], want[i])
		}
	}
}

// Bad requests are one clear error in the OpenAI shape.
func TestOpenAIErrors(t *testing.T) {
	_, url := startGenerators(t)
	for _, c := range []struct {
		path   string
		body   string
		status int
		want   string
	}{
		{"/v1/completions", `{"model":"nope","prompt":"x"}`, 404, "nope"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","max_tokens":900}`, 400, "exceed the context"},
		{"/v1/completions", `{"model":"tiny-gpt","max_tokens":1,"prompt":"` + strings.Repeat("hello ", 600) + `"}`, 400, "600 tokens, more than the model's tokenizer.max_length of 512"},
		{"/v1/completions", `{"model":"tiny-gpt","max_tokens":1,"prompt":"` + strings.Repeat("hello ", 3000) + `"}`, 400, "over 2048 tokens (counting stopped there), more than the model's tokenizer.max_length of 512"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","max_tokens":0}`, 400, "max_tokens"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":[]}`, 400, "prompt: an empty list"},
		{"/v1/completions", `{"model":"text-encoder","prompt":"x"}`, 400, "does not generate"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","temperature":-1}`, 400, "temperature"},
		{"/v1/chat/completions", `{"model":"tiny-gpt","messages":[]}`, 400, "messages"},
		{"/v1/embeddings", `{"model":"tiny-gpt","input":"x"}`, 400, "does not embed"},
		{"/v1/completions", `{"model":`, 400, "request JSON"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","stop":7}`, 400, "stop"},
		{"/v1/embeddings", `{"model":"text-encoder","input":[]}`, 400, "input"},
		// A body's shape is checked before it is decoded, quoting none of
		// it: a long key (encoding/json quotes an unknown one whole), deep
		// nesting, and a model name longer than any.
		{"/v1/completions", `{"` + strings.Repeat("k", 2000) + `":1}`, 400, "a key of 2000 bytes, at most 1024"},
		{"/v1/chat/completions", `{"model":"tiny-gpt","messages":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, 400, "nests 66 deep, at most 64"},
		{"/v1/completions", `{"model":"` + strings.Repeat("m", 5000) + `","prompt":"x"}`, 404, `"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"… (5000 bytes)`},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","max_tokens":` + strings.Repeat("9", 300) + `}`, 400, "has a number of 300 bytes, at most 256"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"x","service_tier":"` + strings.Repeat("\u0080", 3000) + `"}`, 400, "(6000 bytes)"}, // quoted cut
		{"/v1/chat/completions", `{"model":"tiny-gpt","messages":[{"role":"` + strings.Repeat("r", 3000) + `","content":"x"}]}`, 400, "(3000 bytes)"},
		{"/v1/embeddings", "{\"model\":\"text-encoder\",\"input\":\"\xff\"}", 400, "the body is not UTF-8 (byte 33)"},
	} {
		r := call(t, "POST", url+c.path, []byte(c.body), nil)
		var e struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		if r.status != c.status || json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error.Message, c.want) || e.Error.Type == "" || len(r.body) > 1000 {
			t.Errorf("%s %s: %d %s, want %d mentioning %q", c.path, c.body, r.status, r.body, c.status, c.want)
		}
	}
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"text_input":"x","parameters":{"max_tokens":"ten"}}`, 400, `parameter \"max_tokens\": \"ten\", want a whole number`},
		{`{"text_input":"x","parameters":{"max_tokens":1e300}}`, 400, `parameter \"max_tokens\": \"1e+300\", want a whole number`},
		{`{"text_input":"x","parameters":{"max_tokens":2.5}}`, 400, `parameter \"max_tokens\": \"2.5\", want a whole number`},
		{`{"text_input":"x","parameters":{"seed":-1}}`, 400, `want a whole number of 0 or more`},
		{`{"text_input":"x","parameters":{"temperature":"hot"}}`, 400, `parameter \"temperature\": want a number`},
		{`{"text_input":"x","parameters":{"stop":7}}`, 400, `parameter \"stop\": want a string or a list of strings`},
		{`{"text_input":"x","parameters":{"temprature":0,"max_tokens":2}}`, 400, `parameter \"temprature\": not a setting of this generator`},
		{`{"text_input":"x","parameters":{"stop":["a",7]}}`, 400, `parameter \"stop\": want a string or a list of strings`},
		{`{"text_input":""}`, 400, "no tokens"},
		{`{"text_input":`, 400, "request JSON"},
		{`{"text_input":"x","` + strings.Repeat("k", 2000) + `":1}`, 400, "a key of 2000 bytes, at most 1024"},
		{`{"text_input":"x","id":"` + strings.Repeat("i", 1025) + `"}`, 400, "id: 1025 bytes, at most 1024"},
		{`{"text_input":"x","id":"` + strings.Repeat(`\u0041`, 200) + `"}`, 400, "id: 1200 bytes, at most 1024"}, // as sent
		{`{"text_input":"x","id":7}`, 400, "id: want a string"},
		{`{"text_input":"x"} ]]]`, 400, "more after its value"},
	} {
		if r := call(t, "POST", url+"/v2/models/tiny-gpt/generate", []byte(c.body), nil); r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("generate %s: %d %s, want %d mentioning %s", c.body, r.status, r.body, c.status, c.want)
		}
	}
	if r := call(t, "POST", url+"/v2/models/nope/generate", []byte(`{"text_input":"x"}`), nil); r.status != 404 {
		t.Errorf("generate on an unknown model: %d %s", r.status, r.body)
	}
	if r, _ := infer(t, url, "tiny-gpt", &protocol.InferRequest{Inputs: []tensor.Tensor{{Name: "prompt", DataType: tensor.Bytes, Shape: []int64{1}, Data: []byte{1, 0, 0, 0, 'x'}}}}, true); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `input \"prompt\"`) {
		t.Errorf("infer on a generator with an input it does not take: %d %s", r.status, r.body)
	}
}
