package runner

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxModelNameLen bounds a model name, in bytes.
const MaxModelNameLen = 128

// ValidModelName checks that name is in the safe set every model name
// must be in: 1 to MaxModelNameLen ASCII letters, digits, '.', '_' and
// '-', not starting with '.' or '-'. Names outside it are refused where
// they enter (a repository scan, a request path), so that a name reaching
// metric labels, log lines, state file names and URLs is always plain
// text: a folder named in invalid UTF-8 would otherwise fail every
// /metrics scrape. The error quotes the name with Go escapes, never raw.
func ValidModelName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: model name is empty", ErrInvalidInput)
	case len(name) > MaxModelNameLen:
		return fmt.Errorf("%w: model name %.40q… is %d bytes, want at most %d", ErrInvalidInput, name, len(name), MaxModelNameLen)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("%w: model name %q starts with %q; want a letter, digit or '_' first", ErrInvalidInput, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		what := fmt.Sprintf("%q", c)
		if c >= utf8.RuneSelf {
			what = fmt.Sprintf("byte %#x", c)
		}
		return fmt.Errorf("%w: model name %q holds %s at byte %d; want only ASCII letters, digits, '.', '_' and '-'", ErrInvalidInput, name, what, i)
	}
	return nil
}

// QuoteName quotes a model name for an error as %q does, cut to its first
// 40 characters, with its length, when it is longer than any model's
// (MaxModelNameLen): a request may name a model in any number of bytes,
// and an error quoting them whole would copy them again, and again into
// its answer.
func QuoteName(name string) string {
	if len(name) <= MaxModelNameLen {
		return strconv.Quote(name)
	}
	return fmt.Sprintf("%.40q… (%d bytes)", name, len(name))
}
