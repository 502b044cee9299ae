package openai

import (
	"fmt"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// param names a request's field only: a message's first word that is no
// field, or one made only of brackets and dots, names none (the latter
// indexed an empty split and panicked, answering a 400 with a 500).
func TestParamNamesOnlyAField(t *testing.T) {
	for msg, want := range map[string]any{
		"max_tokens: want a whole number": "max_tokens",
		"messages[0].content: want text":  "messages[0].content",
		"the body is empty":               nil,
		"[]. odd":                         nil,
		".: odd":                          nil,
	} {
		if got := param(fmt.Errorf("%w: %s", runner.ErrInvalidInput, msg)); got != want {
			t.Errorf("param of %q = %v, want %v", msg, got, want)
		}
	}
}
