package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"
)

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

// JSONShape is what a scan of JSON text finds of its shape, strings'
// contents aside.
type JSONShape struct {
	// Depth is how deeply it nests arrays and objects (0 for a scalar).
	Depth int
	// LongestKey is the length of its longest object key, in bytes as
	// written (escapes and all).
	LongestKey int
	// LongestLiteral is the length of its longest number, true, false or
	// null, in bytes as written.
	LongestLiteral int
}

// ShapeOf scans raw, JSON text, for its shape, in one pass that allocates
// nothing.
func ShapeOf(raw []byte) JSONShape {
	var sh JSONShape
	level, open, last := 0, -1, -1 // the open string's quote; the length of the string just closed
	run, runEnd := 0, -2           // the literal being read, and its last byte's index
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
			sh.Depth = max(sh.Depth, level)
		case ']', '}':
			level--
		case ':':
			sh.LongestKey = max(sh.LongestKey, last)
		case ',':
		default: // a number's or a literal's byte
			if i != runEnd+1 {
				run = 0
			}
			run, runEnd = run+1, i
			sh.LongestLiteral = max(sh.LongestLiteral, run)
		}
		last = -1
	})
	return sh
}

// Bounds on JSON text a front end decodes with encoding/json (CheckJSON):
// no request nests past a few levels, names a field in more than a few
// dozen bytes, or writes a number in more than a few dozen digits.
const (
	MaxJSONDepth   = 64
	MaxJSONKey     = 1 << 10
	MaxJSONLiteral = 256
)

// CheckJSON refuses JSON text before a decoder reads it when it is not
// UTF-8 or begins with a byte order mark (RFC 8259, 8.1), nests past MaxJSONDepth, or holds a key past
// MaxJSONKey bytes or a number past MaxJSONLiteral bytes as written. A
// decoder recurses once a level; encoding/json quotes an unknown key or
// a number it cannot take whole in its error, and makes each byte that
// is not UTF-8 three: a body of one 60 MiB key took 10 times its size to
// refuse, a 60 MiB number 11 times, 60 MiB of such bytes in a string up
// to 20 times. The error quotes nothing of raw; it reads as the rest of a
// sentence whose subject is the text ("the body " + err).
func CheckJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("is not UTF-8 (byte %d), as JSON text must be", invalidUTF8(raw))
	}
	if bytes.HasPrefix(raw, []byte("\uFEFF")) {
		return errors.New("begins with a byte order mark (U+FEFF), which JSON text must not (RFC 8259, 8.1)")
	}
	switch sh := ShapeOf(raw); {
	case sh.Depth > MaxJSONDepth:
		return fmt.Errorf("nests %d deep, at most %d", sh.Depth, MaxJSONDepth)
	case sh.LongestKey > MaxJSONKey:
		return fmt.Errorf("has a key of %d bytes, at most %d", sh.LongestKey, MaxJSONKey)
	case sh.LongestLiteral > MaxJSONLiteral:
		return fmt.Errorf("has a number of %d bytes, at most %d", sh.LongestLiteral, MaxJSONLiteral)
	}
	return nil
}

// invalidUTF8 is the index of raw's first byte that is not part of valid
// UTF-8.
func invalidUTF8(raw []byte) int {
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(raw)
}
