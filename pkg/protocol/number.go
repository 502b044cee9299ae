package protocol

import (
	"math"
	"strconv"
)

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// jsonNumber is a JSON number token taken apart: its digits as an integer
// mantissa and a power of ten. exact is false when the mantissa overflowed
// 19 digits (then only strconv can round it right).
type jsonNumber struct {
	mant  uint64
	exp   int
	neg   bool
	exact bool
}

// parseNumber checks tok against JSON's number grammar
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, RFC 8259 section 6)
// and takes it apart; ok is false when tok is no JSON number.
func parseNumber(tok string) (n jsonNumber, ok bool) {
	i := 0
	if i < len(tok) && tok[i] == '-' {
		n.neg = true
		i++
	}
	n.exact = true
	digits := func(frac bool) int {
		start := i
		for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			if n.mant < 1e18 {
				n.mant = n.mant*10 + uint64(tok[i]-'0')
				if frac {
					n.exp--
				}
			} else {
				if tok[i] != '0' {
					n.exact = false
				}
				if !frac {
					n.exp++
				}
			}
		}
		return i - start
	}
	switch {
	case i < len(tok) && tok[i] == '0':
		i++
	case digits(false) == 0:
		return n, false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits(true) == 0 {
			return n, false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		sign := 1
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			if tok[i] == '-' {
				sign = -1
			}
			i++
		}
		start, e := i, 0
		for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			if e < 100000 { // beyond any float's range: strconv decides
				e = e*10 + int(tok[i]-'0')
			}
		}
		if i == start {
			return n, false
		}
		n.exp += sign * e
	}
	return n, i == len(tok)
}

// float64 returns the number correctly rounded to a float64 when one
// IEEE operation on exact operands gives it (Clinger's fast path: a
// mantissa below 2^53 and a power of ten up to 22); ok is false otherwise.
func (n jsonNumber) float64() (float64, bool) {
	if !n.exact || n.mant >= 1<<53 || n.exp < -22 || n.exp > 22 {
		return 0, false
	}
	f := float64(n.mant)
	if n.exp < 0 {
		f /= pow10[-n.exp]
	} else {
		f *= pow10[n.exp]
	}
	if n.neg {
		f = -f
	}
	return f, true
}

// parseFloat parses a JSON number token to a float of bitSize 32 or 64,
// rounded exactly as strconv.ParseFloat rounds it, whose fallback it is.
//
// For 32 bits the fast path rounds twice, to float64 then to float32. The
// float64 r is the double nearest the exact value x, and every float32
// midpoint is a double, so no midpoint lies strictly between x and r:
// rounding r gives the float32 nearest x unless r is itself a midpoint.
// That case, and results outside float32's normal range (where the
// midpoint test below does not hold), go to strconv.
func parseFloat(tok string, bitSize int) (float64, error) {
	n, ok := parseNumber(tok)
	if !ok {
		return 0, strconv.ErrSyntax
	}
	if f, fast := n.float64(); fast {
		if bitSize == 64 {
			return f, nil
		}
		if f32, ok := narrow(f); ok {
			return float64(f32), nil
		}
	}
	return strconv.ParseFloat(tok, bitSize)
}

// narrow rounds the correctly rounded float64 f to the float32 nearest
// the exact value f was rounded from; ok is false when double rounding
// could differ from rounding once (parseFloat says why).
func narrow(f float64) (float32, bool) {
	a := math.Abs(f)
	midpoint := math.Float64bits(f)&(1<<29-1) == 1<<28
	if a == 0 || a >= 0x1p-126 && a <= math.MaxFloat32 && !midpoint {
		return float32(f), true
	}
	return 0, false
}

// float32 parses the JSON number at the scanner, when Clinger's fast path
// gives its float32 exactly (as parseFloat's does), in one pass over its
// bytes, and moves past it; ok is false, with the scanner unmoved, for
// anything else: another token, a number that needs strconv, or one not
// followed by a delimiter. The request decoder's loop for FP32 data,
// where parseFloat's token-then-parse passes cost twice as much.
func (s *scanner) float32() (f32 float32, ok bool) {
	b, i := s.b, s.i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			mant = mant*10 + uint64(b[i]-'0')
			digits++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for ; i < len(b) && b[i]-'0' <= 9; i++ {
			mant = mant*10 + uint64(b[i]-'0')
		}
		if i == start {
			return 0, false
		}
		digits += i - start
		exp = start - i
	}
	if i < len(b) && b[i]|0x20 == 'e' {
		i++
		eneg := i < len(b) && b[i] == '-'
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start, e := i, 0
		for ; i < len(b) && b[i]-'0' <= 9 && i-start < 4; i++ {
			e = e*10 + int(b[i]-'0')
		}
		if i == start || i < len(b) && b[i]-'0' <= 9 {
			return 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i < len(b) {
		switch b[i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
		default:
			return 0, false
		}
	}
	if digits > 19 || mant >= 1<<53 || exp < -22 || exp > 22 {
		return 0, false
	}
	f := float64(mant)
	if exp < 0 {
		f /= pow10[-exp]
	} else {
		f *= pow10[exp]
	}
	if neg {
		f = -f
	}
	if f32, ok = narrow(f); ok {
		s.i = i
	}
	return f32, ok
}
