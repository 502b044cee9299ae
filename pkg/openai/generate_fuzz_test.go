package openai

import (
	"bytes"
	"errors"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// FuzzOpenAIRequest: any body of /v1/completions or /v1/chat/completions
// either fails as invalid input (a 400) or gives generation settings
// bounded by the body: a prompt at most about twice its length (each chat
// message adds ": " and a newline), no more stop strings than bytes, and
// a max_tokens that is unset (0) or at least 1.
func FuzzOpenAIRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"tiny-gpt","prompt":"hello world","max_tokens":8,"temperature":0,"seed":1}`,
		`{"model":"tiny-gpt","prompt":["one"],"stop":["\n","."],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"tiny-gpt","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_completion_tokens":4}`,
		`{"model":"tiny-gpt","messages":[{},{},{}],"n":1,"top_p":0.5,"top_k":3}`,
		// Hostile: numbers at and past the edges of their types.
		`{"model":"tiny-gpt","prompt":"x","max_tokens":9223372036854775807}`,
		`{"model":"tiny-gpt","prompt":"x","max_tokens":-9223372036854775808,"n":0}`,
		`{"model":"tiny-gpt","prompt":"x","max_tokens":1e300,"seed":-1,"top_k":-5}`,
		`{"model":"tiny-gpt","prompt":["a","b"],"stop":7}`,
		`{"prompt":"\u0000\ud800","messages":null,"stop":null}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		var req openAIRequest
		if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		p, err := req.params(chat)
		if err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		if len(p.prompt) > 2*len(body)+16 {
			t.Fatalf("a %d-byte prompt from a %d-byte body", len(p.prompt), len(body))
		}
		if len(p.stop) > len(body) {
			t.Fatalf("%d stop strings from a %d-byte body", len(p.stop), len(body))
		}
		if p.maxTokens < 0 {
			t.Fatalf("max_tokens %d accepted", p.maxTokens)
		}
	})
}

// FuzzTritonGenerate: any body of /v2/models/{m}/generate either fails as
// invalid input or gives settings whose prompt and stop strings are
// bounded by the body.
func FuzzTritonGenerate(f *testing.F) {
	for _, s := range []string{
		`{"text_input":"hello world","max_tokens":8}`,
		`{"text_input":"hi","parameters":{"temperature":0.5,"top_p":0.9,"top_k":4,"seed":7,"stop":["\n"],"stream":true}}`,
		`{"text_input":"hi","parameters":{"max_tokens":"ten"}}`,
		`{"text_input":"hi","parameters":{"max_tokens":9e18,"random_seed":-1e300,"stop":"."}}`,
		`{"text_input":"hi","max_tokens":9223372036854775807,"parameters":{"top_k":1e19}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req tritonGenerate
		if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		p, err := req.params()
		if err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		if len(p.prompt) > len(body) || len(p.stop) > len(body) {
			t.Fatalf("a %d-byte prompt and %d stop strings from a %d-byte body", len(p.prompt), len(p.stop), len(body))
		}
	})
}
