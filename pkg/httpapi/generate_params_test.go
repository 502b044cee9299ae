package httpapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/heaptest"
	"github.com/infer-serving/infer/pkg/runner"
)

// A generate request's parameters are counted before they are decoded:
// past their bounds (members, a list's elements) they are refused with no
// more allocated than one copy of their bytes, where decoding a million
// took 19 times the body's size.
func TestGenerateParametersAreCountedFirst(t *testing.T) {
	for _, tc := range []struct{ name, params, want string }{
		{"members", "{" + strings.TrimPrefix(strings.Repeat(`,"k":[]`, 1<<20), ",") + "}", "parameters: 1048576 members, want at most 64"},
		{"nesting", `{"stop":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}", `parameters: nested 9001 deep, want numbers, strings or lists of strings`},
		{"a list's elements", `{"stop":[` + strings.TrimPrefix(strings.Repeat(`,""`, 1<<20), ",") + "]}", `parameter "stop": 1048576 elements, want at most 64`},
	} {
		var err error
		g := tritonGenerate{TextInput: "hi", Parameters: []byte(tc.params)}
		grew := heaptest.Allocated(func() { _, err = g.params() })
		if !errors.Is(err, runner.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if grew > uint64(len(tc.params))+1<<16 {
			t.Errorf("%s (%d bytes): %d bytes allocated to refuse them", tc.name, len(tc.params), grew)
		}
	}
}
