package protocol

// JSONLen counts the elements of raw, valid JSON, when it is an array, or
// its members when it is an object (0 for any other value), without
// decoding them: a scan of its bytes that allocates nothing. A front end
// bounds a list or map with it before decoding one: decoding makes a
// slice element, a map entry or a struct for each, often many times the
// bytes that spelled it ("[]," is 3 bytes, an empty []any 24), where
// json.Decoder skipping each element allocates about 88 bytes apiece.
func JSONLen(raw []byte) int {
	n, depth, empty, open := 1, 0, true, byte(0)
	structure(raw, func(c byte) {
		switch {
		case open == 0: // the first byte that is not a space
			open = c
			depth = 1
			return
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
			if depth == 0 {
				return // the list's own end
			}
		case c == ',' && depth == 1:
			n++
		}
		empty = false
	})
	if open != '[' && open != '{' || empty {
		return 0
	}
	return n
}

// JSONDepth is the deepest nesting of arrays and objects in raw, strings
// aside (0 for a scalar): a front end bounds it before a decoder recurses
// into it, each level a frame of its stack.
func JSONDepth(raw []byte) int {
	depth, deepest := 0, 0
	structure(raw, func(c byte) {
		switch c {
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	})
	return deepest
}

// structure calls fn with each byte of raw, JSON text, that is not a
// space and not within a string (a string's opening quote included, so
// that fn sees every value begin).
func structure(raw []byte, fn func(c byte)) {
	inString, escaped := false, false
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
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			inString = c == '"'
			fn(c)
		}
	}
}
