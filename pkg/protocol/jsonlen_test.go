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

// JSONShape reports the deepest nesting and the longest key as written,
// brackets, colons and quotes inside strings aside.
func TestJSONShape(t *testing.T) {
	for raw, want := range map[string][2]int{
		`7`: {0, 0}, `"[[["`: {0, 0}, `[]`: {1, 0}, `{"a":[1,{"b":[]}]}`: {4, 1}, `["]\"[", [[]]]`: {3, 0},
		`{"abc" : 1, "x": {"a\"b:": "long value: not a key"}}`: {2, 5},
		`["not:a", "key", {"":0}]`:                             {2, 0},
		`{"k": "v", "unterminated`:                             {1, 1},
	} {
		depth, key := JSONShape([]byte(raw))
		if depth != want[0] || key != want[1] {
			t.Errorf("JSONShape(%s) = %d, %d; want %d, %d", raw, depth, key, want[0], want[1])
		}
	}
}
