package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// maxDepth bounds the nesting of the JSON values a scanner skips or
// keeps. No value of the protocol nests deeper than a tensor's rank (64)
// and a few levels more; each level is a frame of the scanner's
// recursion, and at encoding/json's 10,000 a body of 23 KB held 11.6 MB
// of stack.
const maxDepth = 256

// maxDataRoom bounds the room made ahead for a tensor's JSON data, in
// bytes; data past it grows as it is read.
const maxDataRoom = 1 << 20

// scanner reads one JSON text front to back in a single pass: the request
// decoder walks the header with it and parses tensor data straight into
// tensor bytes, where encoding/json would scan the data three times
// (validate, skip into a RawMessage, then parse).
type scanner struct {
	b []byte
	i int
	// kept counts the values kept (parameters') in this text, bounded by
	// MaxParameterValues.
	kept int
	// mem is what the scanner reuses from one text to the next.
	mem scanMemory
}

// MaxParameterValues bounds the values a request's parameters hold, over
// all its parameters objects (the request's, each input's and output's):
// each member's value, and each element of an array or object within
// one. Triton's clients send a handful. Each kept value costs a map entry,
// a slice element or a box: a body of a million "[]," took 36 times its
// size to decode before the bound.
const MaxParameterValues = 4096

// syntaxError is malformed JSON, at a byte offset of the text.
type syntaxError struct {
	msg string
	at  int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.at) }

func (s *scanner) syntax(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...), at: s.i}
}

// clipBytes is how much of a client's token or string a message quotes.
const clipBytes = 64

// Clip quotes s for a message, no more than clipBytes of it: a token or a
// string from a request can be the whole body, and quoting one in full
// would make the answer to a 60 MiB body several times larger.
func Clip(s string) string {
	if len(s) <= clipBytes {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:clipBytes]), len(s))
}

// MaxMessageBytes bounds an error message a front end answers with, in
// bytes: the messages the server writes are far shorter, and a longer
// one quotes something of the client's at length.
const MaxMessageBytes = 4 << 10

// ClipMessage cuts msg to MaxMessageBytes, saying how long it was.
func ClipMessage(msg string) string {
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	return fmt.Sprintf("%s... (a message of %d bytes, cut)", strings.ToValidUTF8(msg[:MaxMessageBytes], ""), len(msg))
}

// isSpace reports JSON's insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// describe names the next byte for a message.
func (s *scanner) describe() string {
	if s.peek(); s.i == len(s.b) {
		return "end of JSON"
	}
	return strconv.QuoteRune(rune(s.b[s.i]))
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() error {
	if s.peek(); s.i < len(s.b) {
		return s.syntax("%s after the top-level value", s.describe())
	}
	return nil
}

// null consumes a null literal if one comes next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// object reads an object, calling member for each key with the scanner at
// the key's value, which member must consume.
func (s *scanner) object(member func(key []byte) error) error {
	if s.peek() != '{' {
		return s.syntax("want an object, found %s", s.describe())
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.syntax("want a key, found %s", s.describe())
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return s.syntax("want ':' after a key, found %s", s.describe())
		}
		s.i++
		s.peek() // values start at their first byte
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax("want ',' or '}' in an object, found %s", s.describe())
		}
	}
}

// array reads an array, calling elem with the scanner at each element,
// which elem must consume.
func (s *scanner) array(elem func() error) error {
	if s.peek() != '[' {
		return s.syntax("want an array, found %s", s.describe())
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.peek() // elements start at their first byte
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.syntax("want ',' or ']' in an array, found %s", s.describe())
		}
	}
}

// str reads a string and returns its contents: a slice of the text when
// it holds no escapes and is valid UTF-8, else a decoded copy (invalid
// UTF-8 becomes U+FFFD, as encoding/json decodes it).
func (s *scanner) str() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.syntax("want a string, found %s", s.describe())
	}
	start := s.i
	end, plain, err := stringEnd(s.b, start)
	if err != nil {
		return nil, err
	}
	s.i = end + 1
	if plain {
		return s.b[start+1 : end], nil
	}
	if raw := s.b[start+1 : end]; bytes.IndexByte(raw, '\\') < 0 {
		return replaceInvalid(raw), nil // bytes that are not UTF-8, and no escapes
	}
	var v string
	if err := json.Unmarshal(s.b[start:end+1], &v); err != nil {
		return nil, &syntaxError{msg: err.Error(), at: start}
	}
	return []byte(v), nil
}

// replaceInvalid is raw with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json decodes a string, in one
// allocation of the exact size: through encoding/json, a string of 60 MB
// of such bytes took about 20 times its size.
func replaceInvalid(raw []byte) []byte {
	n := 0
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			n += utf8.RuneLen(utf8.RuneError)
		} else {
			n += size
		}
		i += size
	}
	out := make([]byte, 0, n)
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, raw[i:i+size]...)
		}
		i += size
	}
	return out
}

// stringLen is the length in bytes, as written, of the string the
// scanner is at (0 when it is at something else, or one not closed): a
// field bounds it before the string is read.
func (s *scanner) stringLen() int {
	if s.peek() != '"' {
		return 0
	}
	end, _, err := stringEnd(s.b, s.i)
	if err != nil {
		return 0
	}
	return end - s.i - 1
}

// text reads a string, or a null (as ""), for a field of type string.
func (s *scanner) text(field string) (string, error) {
	if s.null() {
		return "", nil
	}
	if s.peek() != '"' {
		return "", s.syntax("%s: want a string, found %s", field, s.describe())
	}
	b, err := s.str()
	if err != nil {
		return "", err
	}
	return s.mem.text(b), nil
}

// stringEnd returns the index of the quote closing the string that opens
// at raw[i], and whether its contents are plain: no escapes, only valid
// UTF-8. Control characters, which JSON strings may not hold raw, and an
// unterminated string are errors.
func stringEnd(raw []byte, i int) (end int, plain bool, err error) {
	plain = true
	ascii := true
	for j := i + 1; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			if !ascii && plain {
				plain = utf8.Valid(raw[i+1 : j])
			}
			return j, plain, nil
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return -1, false, &syntaxError{msg: "control character in a string", at: j}
		case c >= 0x80:
			ascii = false
		}
	}
	return -1, false, &syntaxError{msg: "unterminated string", at: i}
}

// token returns the bytes of a number or literal up to the next
// delimiter, as a string that aliases the text: callers copy it before
// keeping it.
func (s *scanner) token() string {
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return unsafe.String(unsafe.SliceData(s.b[start:s.i]), s.i-start)
		}
		s.i++
	}
	return unsafe.String(unsafe.SliceData(s.b[start:s.i]), s.i-start)
}

// value reads any JSON value: kept as encoding/json keeps it in an any
// (map[string]any, []any, float64, string, bool, nil) when keep is set,
// else only checked and skipped.
func (s *scanner) value(keep bool, depth int) (any, error) {
	if depth > maxDepth {
		return nil, s.syntax("nested too deep")
	}
	if keep {
		if s.kept++; s.kept > MaxParameterValues {
			return nil, fmt.Errorf("parameters: more than %d values in one request", MaxParameterValues)
		}
	}
	switch c := s.peek(); c {
	case '{':
		var m map[string]any
		if keep {
			m = map[string]any{}
		}
		return m, s.members(m, depth)
	case '[':
		var a []any
		if keep {
			a = []any{}
		}
		err := s.array(func() error {
			v, err := s.value(keep, depth+1)
			if keep {
				a = append(a, v)
			}
			return err
		})
		return a, err
	case '"':
		b, err := s.str()
		if !keep || err != nil {
			return nil, err
		}
		return string(b), nil
	case 0:
		return nil, s.syntax("unexpected end of JSON")
	}
	at := s.i
	switch tok := s.token(); tok {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	default:
		if _, ok := parseNumber(tok); !ok {
			s.i = at
			return nil, s.syntax("invalid value %s", Clip(tok))
		}
		if !keep {
			return nil, nil
		}
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return nil, err
		}
		return s.mem.number(f), nil
	}
}

// members reads an object's members into m (nil: checks and skips them).
func (s *scanner) members(m map[string]any, depth int) error {
	return s.object(func(key []byte) error {
		v, err := s.value(m != nil, depth+1)
		if m != nil {
			m[knownKey(key)] = v
		}
		return err
	})
}

// knownKeys are the parameter names this server reads itself: most
// requests carry one or two of them.
var knownKeys = [...]string{ParamBinaryDataSize, ParamBinaryData, ParamBinaryDataOutput, ParamTimeout, ParamPriority,
	ParamClassification, ParamClassCount, ParamContentType}

// knownKey returns key as a string: one of knownKeys without an
// allocation, any other as a copy.
func knownKey(key []byte) string {
	for _, k := range knownKeys {
		if string(key) == k {
			return k
		}
	}
	return string(key)
}

// parameters reads a parameters object (or null).
func (s *scanner) parameters() (Parameters, error) {
	if s.null() {
		return nil, nil
	}
	if s.peek() != '{' {
		return nil, s.syntax("parameters: want an object, found %s", s.describe())
	}
	if s.kept++; s.kept > MaxParameterValues { // the object itself, a map made
		return nil, fmt.Errorf("parameters: more than %d values in one request", MaxParameterValues)
	}
	m := s.mem.parametersMap()
	if err := s.members(m, 0); err != nil {
		return nil, err
	}
	return m, nil
}

// int64s reads an array of integers (or null), such as a shape: the first
// limit of them, and n, how many it holds. Those past limit are checked
// but not kept, so that a shape of a million dimensions costs nothing
// before it is refused.
func (s *scanner) int64s(field string, limit int) (ints []int64, n int, err error) {
	if s.null() {
		return nil, 0, nil
	}
	if s.mem.ints == nil {
		s.mem.ints = make([]int64, 0, 8) // an empty shape is not a missing one
	}
	start := len(s.mem.ints)
	err = s.array(func() error {
		at := s.i
		tok := s.token()
		if _, ok := parseNumber(tok); !ok {
			s.i = at
			return s.syntax("%s: invalid value %s", field, Clip(tok))
		}
		v, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %s is not a 64-bit integer", field, Clip(tok))
		}
		if n++; n <= limit {
			s.mem.ints = append(s.mem.ints, v)
		}
		return nil
	})
	all := s.mem.ints // the arena: a shape in it is capped, so that appending to it copies
	return all[start:len(all):len(all)], n, err
}

// errSyntax reports whether err is malformed JSON rather than a bad value.
func errSyntax(err error) bool {
	var se *syntaxError
	return errors.As(err, &se)
}
