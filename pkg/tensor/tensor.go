// Package tensor holds the one tensor type that every layer of infer shares:
// front ends decode wire tensors into it, the runner batches and executes
// it, and the load generator builds it.
//
// A Tensor's data is kept as raw bytes, little-endian and row-major, exactly
// as the Open Inference Protocol's binary tensor extension and ONNX Runtime
// lay it out, so that moving a tensor between the wire and the runtime is a
// slice, not a conversion.
package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DataType is an element type named as the Open Inference Protocol names it.
type DataType uint8

// The protocol's element types. BF16 is Triton's addition.
const (
	Invalid DataType = iota
	Bool
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	FP16
	BF16
	FP32
	FP64
	Bytes
)

var typeNames = [...]string{
	Invalid: "INVALID",
	Bool:    "BOOL",
	Uint8:   "UINT8",
	Uint16:  "UINT16",
	Uint32:  "UINT32",
	Uint64:  "UINT64",
	Int8:    "INT8",
	Int16:   "INT16",
	Int32:   "INT32",
	Int64:   "INT64",
	FP16:    "FP16",
	BF16:    "BF16",
	FP32:    "FP32",
	FP64:    "FP64",
	Bytes:   "BYTES",
}

var typeSizes = [...]int{
	Bool: 1, Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8,
	Int8: 1, Int16: 2, Int32: 4, Int64: 8,
	FP16: 2, BF16: 2, FP32: 4, FP64: 8,
	Bytes: 0,
}

// String returns the protocol's name for d, such as "FP32".
func (d DataType) String() string {
	if int(d) < len(typeNames) {
		return typeNames[d]
	}
	return fmt.Sprintf("DataType(%d)", uint8(d))
}

// ParseDataType returns the type the protocol calls name.
func ParseDataType(name string) (DataType, bool) {
	for i, n := range typeNames {
		if i != int(Invalid) && n == name {
			return DataType(i), true
		}
	}
	return Invalid, false
}

// Size returns the size of one element in bytes, or 0 for BYTES, whose
// elements vary in length.
func (d DataType) Size() int {
	if int(d) < len(typeSizes) {
		return typeSizes[d]
	}
	return 0
}

// Tensor is a named, typed, shaped block of elements.
type Tensor struct {
	Name     string
	DataType DataType
	Shape    []int64
	// Data holds the elements little-endian and row-major. For BYTES, each
	// element is a 4-byte little-endian length followed by that many bytes.
	Data []byte
}

// MaxRank is the most dimensions a shape may have. ONNX graphs rarely go
// past 8; a longer shape from a client is refused rather than walked.
const MaxRank = 64

// Elements returns the number of elements the shape holds, or -1 when a
// dimension is negative or the count overflows. Shapes that come from
// outside the process are checked with ElementsChecked instead, which says
// what is wrong.
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

// ElementsChecked returns the number of elements shape holds: the product
// of its dimensions, 1 for a scalar (an empty shape). It fails when shape
// has more than MaxRank dimensions, when a dimension is negative, or when
// the product overflows int64; the errors name the shape. It allocates
// nothing, so it is safe to call on any shape a client declares.
func ElementsChecked(shape []int64) (int64, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("invalid shape: rank %d, at most %d dimensions", len(shape), MaxRank)
	}
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("invalid shape %v: dimension %d is %d, want 0 or more", shape, i, d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("invalid shape %v: the product of its dimensions overflows int64", shape)
		}
		n *= d
	}
	return n, nil
}

// ByteSize returns the bytes n elements of a fixed-size type d take,
// n*d.Size(). It fails for BYTES (whose elements vary in size), for a
// negative n and when the product overflows int64.
func ByteSize(n int64, d DataType) (int64, error) {
	size := int64(d.Size())
	switch {
	case size == 0:
		return 0, fmt.Errorf("%s elements have no fixed size", d)
	case n < 0:
		return 0, fmt.Errorf("%d elements", n)
	case n > math.MaxInt64/size:
		return 0, fmt.Errorf("%d elements of %s: the byte count overflows int64", n, d)
	}
	return n * size, nil
}

// Validate checks that t's data holds exactly the elements its shape and
// type call for, with overflow-safe arithmetic: t may come straight from a
// client.
func (t *Tensor) Validate() error {
	if t.DataType == Invalid || t.DataType.Size() == 0 && t.DataType != Bytes {
		return fmt.Errorf("tensor %q: unknown datatype %s", t.Name, t.DataType)
	}
	n, err := ElementsChecked(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if t.DataType == Bytes {
		got, err := CountBytesElements(t.Data)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if got != n {
			return fmt.Errorf("tensor %q: shape %v declares %d elements, data holds %d", t.Name, t.Shape, n, got)
		}
		return nil
	}
	want, err := ByteSize(n, t.DataType)
	if err != nil {
		return fmt.Errorf("tensor %q: shape %v: %w", t.Name, t.Shape, err)
	}
	if int64(len(t.Data)) != want {
		return fmt.Errorf("tensor %q: shape %v of %s needs %d bytes, data has %d", t.Name, t.Shape, t.DataType, want, len(t.Data))
	}
	return nil
}

// CountBytesElements counts the length-prefixed elements of BYTES data.
func CountBytesElements(data []byte) (int64, error) {
	var n int64
	for len(data) > 0 {
		if len(data) < 4 {
			return 0, fmt.Errorf("BYTES element %d: %d bytes left, need a 4-byte length", n, len(data))
		}
		l := binary.LittleEndian.Uint32(data)
		if uint64(l) > uint64(len(data)-4) {
			return 0, fmt.Errorf("BYTES element %d: length %d exceeds the %d bytes left", n, l, len(data)-4)
		}
		data = data[4+l:]
		n++
	}
	return n, nil
}

// Copies returns copies of ts whose data share one new allocation and
// whose shapes are their own, for a caller that keeps tensors past the
// life of the buffers they lie in.
func Copies(ts []Tensor) []Tensor {
	n := 0
	for _, t := range ts {
		n += len(t.Data)
	}
	data := make([]byte, 0, n)
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		start := len(data)
		data = append(data, t.Data...)
		out[i] = Tensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64(nil), t.Shape...), Data: data[start:len(data):len(data)]}
	}
	return out
}
