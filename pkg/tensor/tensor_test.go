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
		{Tensor{Name: "e", DataType: Bytes, Shape: []int64{3}, Data: bytesData}, "declares 3 elements, data holds 2"},
		{Tensor{Name: "f", DataType: Bytes, Shape: []int64{1}, Data: []byte{9, 0, 0, 0, 'x'}}, "exceeds"},
		{Tensor{Name: "g", DataType: Invalid, Shape: []int64{1}}, "unknown datatype"},
		// 2^62 FP32 elements are 2^64 bytes: the byte count must not wrap to 0.
		{Tensor{Name: "h", DataType: FP32, Shape: []int64{1 << 31, 1 << 31}}, "overflows int64"},
		{Tensor{Name: "i", DataType: FP32, Shape: []int64{math.MaxInt64, 2}}, "overflows int64"},
	} {
		err := tc.t.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err %v, want %q", tc.t.Name, err, tc.want)
		}
	}
}

func TestElementsChecked(t *testing.T) {
	for _, tc := range []struct {
		shape []int64
		want  int64
		err   string
	}{
		{nil, 1, ""},
		{[]int64{}, 1, ""},
		{[]int64{2, 3, 4}, 24, ""},
		{[]int64{0, math.MaxInt64, math.MaxInt64}, 0, ""},
		{[]int64{math.MaxInt64}, math.MaxInt64, ""},
		{[]int64{1 << 32, 1 << 31}, 0, "overflows int64"},
		{[]int64{math.MaxInt64, 2}, 0, "overflows int64"},
		{[]int64{3, -1}, 0, "dimension 1 is -1"},
		{make([]int64, MaxRank+1), 0, "rank 65"},
	} {
		n, err := ElementsChecked(tc.shape)
		if tc.err == "" && (err != nil || n != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ElementsChecked(%v) = %d, %v; want %d, %q", tc.shape, n, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		n    int64
		dt   DataType
		want int64
		ok   bool
	}{
		{3, FP32, 12, true},
		{0, FP64, 0, true},
		{math.MaxInt64 / 8, FP64, math.MaxInt64 / 8 * 8, true},
		{math.MaxInt64/8 + 1, FP64, 0, false},
		{-1, FP32, 0, false},
		{1, Bytes, 0, false},
	} {
		got, err := ByteSize(tc.n, tc.dt)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ByteSize(%d, %s) = %d, %v", tc.n, tc.dt, got, err)
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

// BytesValues returns each length-prefixed element, and refuses other
// types and data cut short.
func TestBytesValues(t *testing.T) {
	data := []byte{2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 1, 0, 0, 0, '{'}
	got, err := BytesValues(Tensor{Name: "s", DataType: Bytes, Shape: []int64{3}, Data: data})
	if err != nil || len(got) != 3 || string(got[0]) != "ab" || len(got[1]) != 0 || string(got[2]) != "{" {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := BytesValues(Tensor{Name: "s", DataType: Bytes, Data: data[:5]}); err == nil || !strings.Contains(err.Error(), `"s"`) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := BytesValues(New("f", []int64{1}, []float32{1})); err == nil {
		t.Error("FP32 read as BYTES")
	}
}
