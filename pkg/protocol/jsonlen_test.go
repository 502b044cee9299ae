package protocol

import "testing"

// JSONLen counts an array's elements or an object's members without
// decoding them, commas inside strings and nested values aside.
func TestJSONLenCountsTopLevelElements(t *testing.T) {
	for raw, want := range map[string]int{
		`[]`: 0, ` [ ] `: 0, `{}`: 0, `"a,b"`: 0, `7`: 0, `["a"]`: 1, `{"a":1}`: 1,
		`["a,b", [1,2], {"k":"],\""}, "\\\"", 3]`: 5,
		`{"a":[1,2],"b":{"c":1,"d":2},"e,f":"}"}`: 3,
	} {
		if got := JSONLen([]byte(raw)); got != want {
			t.Errorf("JSONLen(%s) = %d, want %d", raw, got, want)
		}
	}
}

// JSONDepth is the deepest nesting, brackets inside strings aside.
func TestJSONDepth(t *testing.T) {
	for raw, want := range map[string]int{`7`: 0, `"[[["`: 0, `[]`: 1, `{"a":[1,{"b":[]}]}`: 4, `["]\"[", [[]]]`: 3} {
		if got := JSONDepth([]byte(raw)); got != want {
			t.Errorf("JSONDepth(%s) = %d, want %d", raw, got, want)
		}
	}
}
