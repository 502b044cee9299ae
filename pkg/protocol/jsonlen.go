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

// JSONShape reports how deeply raw, JSON text, nests arrays and objects
// (0 for a scalar) and the length of its longest object key, in bytes as
// written (escapes and all), in one scan that allocates nothing. A front
// end checks both before a decoder reads the text: a decoder recurses
// once a level, and encoding/json quotes a key it does not know whole in
// its error (a body of one 60 MiB key took ten times its size to
// refuse).
func JSONShape(raw []byte) (depth, longestKey int) {
	level, inString, escaped := 0, false, false
	start, last := 0, -1 // the open string's first byte; the length of the string just closed
	for i, c := range raw {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString, last = false, i-start
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue // a key's colon may follow spaces
		case '"':
			inString, start = true, i+1
		case '[', '{':
			level++
			depth = max(depth, level)
		case ']', '}':
			level--
		case ':':
			longestKey = max(longestKey, last)
		}
		last = -1
	}
	return depth, longestKey
}
