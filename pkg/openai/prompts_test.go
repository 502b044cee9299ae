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

// listLen counts a list's elements without decoding them, commas inside
// strings and nested values aside.
func TestListLenCountsTopLevelElements(t *testing.T) {
	for raw, want := range map[string]int{
		`[]`: 0, ` [ ] `: 0, `"a,b"`: 0, `7`: 0, `["a"]`: 1,
		`["a,b", [1,2], {"k":"],\""}, "\\\"", 3]`: 5,
	} {
		if got := listLen(json.RawMessage(raw)); got != want {
			t.Errorf("listLen(%s) = %d, want %d", raw, got, want)
		}
	}
}
