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
	structure(raw, func(_ int, c byte) {
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
// space and not within a string, and its index: a string's quotes
// included, opening and closing, so that fn sees every value begin and
// every string end.
func structure(raw []byte, fn func(i int, c byte)) {
	inString, escaped := false, false
	for i, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				fn(i, c)
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			inString = c == '"'
			fn(i, c)
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
	level, open, last := 0, -1, -1 // the open string's quote; the length of the string just closed
	structure(raw, func(i int, c byte) {
		switch c {
		case '"':
			if open < 0 {
				open = i
				return
			}
			last, open = i-open-1, -1
			return
		case '[', '{':
			level++
			depth = max(depth, level)
		case ']', '}':
			level--
		case ':':
			longestKey = max(longestKey, last)
		}
		last = -1
	})
	return depth, longestKey
}
