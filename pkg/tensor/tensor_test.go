package tensor

import (
	"math"
	"strings"
	"testing"
)

func TestFloat16(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		bits uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                 // largest half
		{65520, 0x7c00},                 // rounds up to infinity
		{6.103515625e-05, 0x0400},       // smallest normal
		{5.960464477539063e-08, 0x0001}, // smallest subnormal
		{1.0009765625, 0x3c01},          // exactly representable
		{1.00048828125, 0x3c00},         // tie: rounds to even
		{float32(math.Inf(1)), 0x7c00},
	} {
		if got := Float32ToFloat16(tc.f); got != tc.bits {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", tc.f, got, tc.bits)
		}
		if tc.bits != 0x7c00 || math.IsInf(float64(tc.f), 1) {
			if back := Float16ToFloat32(tc.bits); back != tc.f && !(tc.f == 1.00048828125) {
				t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", tc.bits, back, tc.f)
			}
		}
	}
	if !math.IsNaN(float64(Float16ToFloat32(Float32ToFloat16(float32(math.NaN()))))) {
		t.Error("NaN did not survive a round trip")
	}
	// Every half value survives widening and narrowing.
	for h := range uint32(1 << 16) {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN payloads
		}
		if got := Float32ToFloat16(Float16ToFloat32(uint16(h))); got != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, Float16ToFloat32(uint16(h)), got)
		}
	}
}

func TestValuesRoundTrip(t *testing.T) {
	in := []int64{-3, 0, 1 << 40}
	tt := New("x", []int64{3}, in)
	if tt.DataType != Int64 || len(tt.Data) != 24 {
		t.Fatalf("%+v", tt)
	}
	out, err := Values[int64](tt)
	if err != nil || out[0] != -3 || out[2] != 1<<40 {
		t.Fatalf("%v %v", out, err)
	}
	if _, err := Values[float32](tt); err == nil {
		t.Fatal("decoding INT64 as float32 must fail")
	}
}

func TestValidate(t *testing.T) {
	bytesData := []byte{2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0}
	for _, tc := range []struct {
		t    Tensor
		want string // "" = valid
	}{
		{New("a", []int64{2, 2}, []float32{1, 2, 3, 4}), ""},
		{Tensor{Name: "b", DataType: FP32, Shape: []int64{2, 2}, Data: make([]byte, 15)}, "needs 16 bytes"},
		{Tensor{Name: "c", DataType: FP32, Shape: []int64{-1}}, "invalid shape"},
		{Tensor{Name: "d", DataType: Bytes, Shape: []int64{2}, Data: bytesData}, ""},
		{Tensor{Name: "e", DataType: Bytes, Shape: []int64{3}, Data: bytesData}, "holds 3 elements, data has 2"},
		{Tensor{Name: "f", DataType: Bytes, Shape: []int64{1}, Data: []byte{9, 0, 0, 0, 'x'}}, "exceeds"},
		{Tensor{Name: "g", DataType: Invalid, Shape: []int64{1}}, "unknown datatype"},
	} {
		err := tc.t.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err %v, want %q", tc.t.Name, err, tc.want)
		}
	}
}

func TestParseDataType(t *testing.T) {
	for dt := Bool; dt <= Bytes; dt++ {
		got, ok := ParseDataType(dt.String())
		if !ok || got != dt {
			t.Errorf("ParseDataType(%q) = %v, %v", dt.String(), got, ok)
		}
	}
	if _, ok := ParseDataType("FLOAT"); ok {
		t.Error(`"FLOAT" is not a protocol datatype`)
	}
}
