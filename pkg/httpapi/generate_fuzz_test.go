package httpapi

import (
	"bytes"
	"errors"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

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
		if err := DecodeJSON(bytes.NewReader(body), &req); err != nil {
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
		if len(p.Prompt) > len(body) || len(p.Stop) > len(body) {
			t.Fatalf("a %d-byte prompt and %d stop strings from a %d-byte body", len(p.Prompt), len(p.Stop), len(body))
		}
	})
}
