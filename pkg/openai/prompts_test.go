package openai

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/generate"
)

// A prompt list past the limit is refused before a request's parameters
// are copied for each entry: a 3 MB list of a million empty prompts once
// took 540 MB to refuse.
func TestTooManyPromptsAreRefusedBeforeTheyAreBuilt(t *testing.T) {
	for _, list := range []string{`""`, `[0]`} {
		body := json.RawMessage("[" + strings.TrimSuffix(strings.Repeat(list+",", 100_000), ",") + "]")
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := prompts(body, generate.Params{})
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "100000 prompts, want at most 64") {
			t.Fatalf("%s × 100,000: %v, want the count refused", list, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 20*uint64(len(body)) {
			t.Errorf("%s × 100,000 (%d bytes): %d bytes allocated to refuse it", list, len(body), grew)
		}
	}
}

// A chat request's messages, a message's content parts, an embeddings
// input list, logit_bias and modalities are counted before any is decoded
// (metadata, refused unless empty, is never decoded): past their bounds they
// are refused with no more allocated than a few copies of the body's
// bytes (the request's raw fields, the decoder's buffer). Decoded whole,
// a list of empty messages took about 60 times its size, of parts 17.
func TestLongListsAreRefusedBeforeTheyAreDecoded(t *testing.T) {
	list := func(elem string, n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
	}
	for _, tc := range []struct {
		name, body, want string
		refuse           func(request) error
	}{
		{"messages", `{"messages":` + list(`{}`, 100_000) + `}`, "messages: 100000 messages, want at most 4096",
			func(o request) error { _, err := chatPrompt(o.Messages); return err }},
		{"content parts", `{"messages":[{"role":"user","content":` + list(`{}`, 100_000) + `}]}`, "messages[0].content: 100000 parts, want at most 256",
			func(o request) error { _, err := chatPrompt(o.Messages); return err }},
		{"embeddings input", `{"input":` + list(`""`, 100_000) + `}`, "input: 100000 inputs, want at most 2048",
			func(o request) error { _, err := embeddingsRequest{Input: o.Prompt}.texts(); return err }},
		{"logit_bias", `{"logit_bias":{` + strings.TrimPrefix(strings.Repeat(`,"1":0`, 100_000), ",") + `}}`, "logit_bias: 100000 entries, want at most 1024",
			func(o request) error { _, err := logitBias(o.LogitBias); return err }},
		{"modalities", `{"modalities":` + list(`""`, 100_000) + `}`, `: only ["text"]`,
			func(o request) error { return o.refused(true) }},
		{"stop", `{"prompt":"hi","stop":` + list(`""`, 100_000) + `}`, "stop: 100000 sequences, want at most 4",
			func(o request) error { _, err := o.plan(false); return err }},
		{"token ids", `{"prompt":[` + list(`1`, 1<<20+1) + `]}`, "prompt: over 1048576 token ids",
			func(o request) error { _, err := prompts(o.Prompt, generate.Params{}); return err }},
		{"metadata", `{"metadata":{` + strings.TrimPrefix(strings.Repeat(`,"k":""`, 100_000), ",") + `}}`, "metadata: this server keeps no completions to tag",
			func(o request) error { return o.refused(true) }},
	} {
		body := strings.Replace(tc.body, `"input"`, `"prompt"`, 1) // request's field for a raw list
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var o request
		if err = json.Unmarshal([]byte(body), &o); err == nil {
			err = tc.refuse(o)
		}
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8*uint64(len(body)) {
			t.Errorf("%s (%d bytes): %d bytes allocated to refuse it", tc.name, len(body), grew)
		}
	}
}

// A flat list of token ids is one prompt, however long: its ids are not
// counted as prompts (65 ids were refused as "65 prompts"); nor is a
// text's comma counted as a token id.
func TestTokenIDsAreOnePrompt(t *testing.T) {
	ids := "[" + strings.TrimSuffix(strings.Repeat("7,", 65), ",") + "]"
	ps, err := prompts(json.RawMessage(ids), generate.Params{})
	if err != nil || len(ps) != 1 || len(ps[0].PromptIDs) != 65 {
		t.Fatalf("65 token ids: %d prompts, %v", len(ps), err)
	}
	// A text's commas are no token ids: a prompt of more commas than the
	// ids' bound is one prompt too.
	text := `"` + strings.Repeat(",", 1<<20+1) + `"`
	if ps, err := prompts(json.RawMessage(text), generate.Params{}); err != nil || len(ps) != 1 {
		t.Fatalf("a text of commas: %d prompts, %v", len(ps), err)
	}
}
