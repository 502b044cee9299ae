package protocol

import "bytes"

// JSONLen counts the elements of raw, valid JSON, when it is an array, or
// its members when it is an object (0 for any other value), without
// decoding them: a scan of its bytes that allocates nothing. A front end
// bounds a list or map with it before decoding one: decoding makes a
// slice element, a map entry or a struct for each, often many times the
// bytes that spelled it ("[]," is 3 bytes, an empty []any 24), where
// json.Decoder skipping each element allocates about 88 bytes apiece.
func JSONLen(raw []byte) int {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' && raw[0] != '{' {
		return 0
	}
	n, depth, inString, escaped, empty := 1, 0, false, false, true
	for _, c := range raw[1 : len(raw)-1] {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 0:
			n++
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			empty = false
		}
	}
	if empty {
		return 0
	}
	return n
}

// JSONDepth is the deepest nesting of arrays and objects in raw, strings
// aside (0 for a scalar): a front end bounds it before a decoder recurses
// into it, each level a frame of its stack.
func JSONDepth(raw []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
