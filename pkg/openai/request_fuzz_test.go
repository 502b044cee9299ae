package openai

import (
	"bytes"
	"encoding/json"
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
		`{"model":"tiny-gpt","prompt":[[1,2,3],[4]],"n":2,"best_of":3,"logprobs":2,"echo":true}`,
		`{"model":"tiny-gpt","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url"}]}],"logprobs":true,"top_logprobs":3}`,
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
		var req request
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := decodeErr(dec.Decode(&req)); err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		pl, err := req.plan(chat)
		if err != nil {
			if !errors.Is(err, runner.ErrInvalidInput) {
				t.Fatalf("an error that is not invalid input: %v", err)
			}
			return
		}
		text := 0
		for _, p := range pl.prompts {
			text += len(p.Prompt)
			if p.MaxTokens < 0 {
				t.Fatalf("max_tokens %d accepted", p.MaxTokens)
			}
			if len(p.Stop) > len(body) {
				t.Fatalf("%d stop strings from a %d-byte body", len(p.Stop), len(body))
			}
		}
		if text > 2*len(body)+16 {
			t.Fatalf("%d bytes of prompt from a %d-byte body", text, len(body))
		}
		if len(pl.prompts) > maxPrompt || pl.n > maxN || pl.bestOf > maxBestOf {
			t.Fatalf("%d prompts, n %d, best_of %d accepted", len(pl.prompts), pl.n, pl.bestOf)
		}
	})
}
