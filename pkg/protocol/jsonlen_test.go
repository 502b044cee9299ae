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
