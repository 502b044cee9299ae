package protocol

import (
	"strings"
	"testing"
)

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

// ShapeOf reports the deepest nesting, the longest key and the longest
// literal as written, brackets, colons and quotes inside strings aside.
func TestShapeOf(t *testing.T) {
	for raw, want := range map[string]JSONShape{
		`7`: {0, 0, 1}, `"[[["`: {0, 0, 0}, `[]`: {1, 0, 0}, `{"a":[1,{"b":[]}]}`: {4, 1, 1}, `["]\"[", [[]]]`: {3, 0, 0},
		`{"abc" : 1, "x": {"a\"b:": "long value: not a key"}}`: {2, 5, 1},
		`["not:a", "key", {"":0}]`:                             {2, 0, 1},
		`{"k": "v", "unterminated`:                             {1, 1, 0},
		`[-12.5e+3, true,null , 1 2]`:                          {1, 0, 8},
	} {
		if got := ShapeOf([]byte(raw)); got != want {
			t.Errorf("ShapeOf(%s) = %+v, want %+v", raw, got, want)
		}
	}
}

// CheckJSON refuses text that is not UTF-8 or passes a bound, naming what
// and quoting nothing.
func TestCheckJSON(t *testing.T) {
	long := func(n int, s string) string { return strings.Repeat(s, n) }
	for raw, want := range map[string]string{
		`{"a":"b"}`:                       "",
		"\uFEFF{}":                        "begins with a byte order mark (U+FEFF), which JSON text must not (RFC 8259, 8.1)",
		"{\"a\":\"\xff\"}":                "is not UTF-8 (byte 6), as JSON text must be",
		`{"` + long(1025, "k") + `":1}`:   "has a key of 1025 bytes, at most 1024",
		`{"` + long(1024, "k") + `":1}`:   "",
		long(65, "[") + long(65, "]"):     "nests 65 deep, at most 64",
		`{"n":` + long(257, "9") + `}`:    "has a number of 257 bytes, at most 256",
		`{"s":"` + long(5000, "9") + `"}`: "",
	} {
		err := CheckJSON([]byte(raw))
		if want == "" && err != nil || want != "" && (err == nil || err.Error() != want) {
			t.Errorf("CheckJSON(%.40s…) = %v, want %q", raw, err, want)
		}
	}
}
