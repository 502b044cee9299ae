package protocol

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkParseFloat asserts that parseFloat agrees with strconv.ParseFloat
// to the bit, error for error, on a JSON number token.
func checkParseFloat(t *testing.T, tok string) {
	t.Helper()
	for _, bits := range []int{32, 64} {
		want, wantErr := strconv.ParseFloat(tok, bits)
		got, err := parseFloat(tok, bits)
		if (err != nil) != (wantErr != nil) || err == nil && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseFloat(%q, %d) = %v (%x), %v; strconv: %v (%x), %v", tok, bits, got, math.Float64bits(got), err, want, math.Float64bits(want), wantErr)
		}
	}
	// The scanner's one-pass FP32 path either agrees to the bit and moves
	// past the number, or declines and stays where it was.
	want, wantErr := strconv.ParseFloat(tok, 32)
	for _, text := range []string{tok, tok + ",", tok + "]", tok + " "} {
		s := scanner{b: []byte(text)}
		got, ok := s.float32()
		switch {
		case !ok && s.i != 0:
			t.Fatalf("scanner.float32(%q) declined and moved to %d", text, s.i)
		case ok && (wantErr != nil || math.Float32bits(got) != math.Float32bits(float32(want)) || s.i != len(tok)):
			t.Fatalf("scanner.float32(%q) = %v (%x) at %d; strconv: %v (%x), %v", text, got, math.Float32bits(got), s.i, want, math.Float32bits(float32(want)), wantErr)
		}
	}
}

// The fast path rounds as strconv does, to the bit: the shortest spelling
// of random float32 and float64 values, long decimals, and the exact
// decimal value of float32 midpoints, where rounding twice could go wrong.
func TestParseFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		f32 := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			continue
		}
		checkParseFloat(t, strconv.FormatFloat(float64(f32), 'g', -1, 32))
		checkParseFloat(t, strconv.FormatFloat(float64(f32), 'f', -1, 32))
		checkParseFloat(t, strconv.FormatFloat(float64(rng.Float32()), 'g', -1, 32))
		checkParseFloat(t, strconv.FormatFloat(rng.NormFloat64(), 'g', -1, 64))
		checkParseFloat(t, strconv.FormatFloat(rng.Float64()*1e6, 'f', rng.IntN(12), 64))
		// The midpoint between a float32 and the next, written out
		// exactly, and the doubles either side of it.
		lo := math.Float32frombits(rng.Uint32N(0x7f000000))
		hi := math.Nextafter32(lo, float32(math.Inf(1)))
		mid := new(big.Float).SetPrec(200).Add(big.NewFloat(float64(lo)), big.NewFloat(float64(hi)))
		mid.Quo(mid, big.NewFloat(2))
		checkParseFloat(t, mid.Text('g', 30))
		checkParseFloat(t, mid.Text('g', 16))
		checkParseFloat(t, mid.Text('g', 15))
	}
	for _, tok := range []string{"0", "-0", "1", "-1", "0.1", "1e22", "1e23", "1e-22", "1e-23", "123456789012345678",
		"9007199254740993", "3.4028235e38", "3.4028236e38", "1e39", "1.17549435e-38", "1e-45", "1e-46", "0.0000001",
		"16777217", "33554431", "1.00000005960464477539", "100000000000000000000000000000", "2.5e-324", "1.7976931348623157e308", "1e309"} {
		checkParseFloat(t, tok)
	}
}

// Only JSON's number grammar parses: what strconv also accepts (a plus
// sign, hex, underscores, inf, a bare dot, leading zeros) does not.
func TestParseNumberIsJSONGrammar(t *testing.T) {
	for _, tok := range []string{"", "-", "+1", "01", "1.", ".5", "1e", "1e+", "0x10", "1_0", "inf", "NaN", "Infinity", "- 1", "1.5e3.2", "--1"} {
		s := scanner{b: []byte(tok)}
		if _, ok := s.float32(); ok {
			t.Errorf("scanner.float32 took %q", tok)
		}
		if _, ok := parseNumber(tok); ok {
			t.Errorf("%q parsed as a JSON number", tok)
		}
	}
	for _, tok := range []string{"0", "-0", "10", "0.5", "-0.5e-3", "1E+2", "12345678901234567890123"} {
		if _, ok := parseNumber(tok); !ok {
			t.Errorf("%q did not parse as a JSON number", tok)
		}
	}
}

// FuzzParseFloat: on any token, parseFloat agrees with strconv where the
// token is a JSON number, and refuses it where it is not.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"0.1", "-3.4e38", "1e-45", "16777217", "0.00000000000000000000001", "1.0000000596046448"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if _, ok := parseNumber(tok); !ok {
			if _, err := parseFloat(tok, 32); err == nil {
				t.Fatalf("%q: not a JSON number, but parsed", tok)
			}
			return
		}
		checkParseFloat(t, tok)
	})
}
