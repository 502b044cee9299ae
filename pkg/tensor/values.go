package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Number is the set of Go element types with a direct protocol type.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// TypeOf returns the protocol type that holds Go values of type T.
func TypeOf[T Number]() DataType {
	var z T
	switch any(z).(type) {
	case int8:
		return Int8
	case int16:
		return Int16
	case int32:
		return Int32
	case int64:
		return Int64
	case uint8:
		return Uint8
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case float32:
		return FP32
	case float64:
		return FP64
	}
	return Invalid
}

// New returns a tensor holding values, encoded little-endian.
func New[T Number](name string, shape []int64, values []T) Tensor {
	dt := TypeOf[T]()
	size := dt.Size()
	data := make([]byte, len(values)*size)
	for i, v := range values {
		putElement(data[i*size:], dt, v)
	}
	return Tensor{Name: name, DataType: dt, Shape: shape, Data: data}
}

// Values decodes t's elements as Go values of type T, which must match t's
// type.
func Values[T Number](t Tensor) ([]T, error) {
	dt := TypeOf[T]()
	if t.DataType != dt {
		return nil, fmt.Errorf("tensor %q is %s, not %s", t.Name, t.DataType, dt)
	}
	size := dt.Size()
	if len(t.Data)%size != 0 {
		return nil, fmt.Errorf("tensor %q: %d bytes is not a whole number of %s elements", t.Name, len(t.Data), dt)
	}
	out := make([]T, len(t.Data)/size)
	for i := range out {
		out[i] = getElement[T](t.Data[i*size:], dt)
	}
	return out, nil
}

// NewBool returns a BOOL tensor, one byte per element.
func NewBool(name string, shape []int64, values []bool) Tensor {
	data := make([]byte, len(values))
	for i, v := range values {
		if v {
			data[i] = 1
		}
	}
	return Tensor{Name: name, DataType: Bool, Shape: shape, Data: data}
}

// NewFP16 returns an FP16 tensor holding values rounded to half precision.
func NewFP16(name string, shape []int64, values []float32) Tensor {
	data := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(data[2*i:], Float32ToFloat16(v))
	}
	return Tensor{Name: name, DataType: FP16, Shape: shape, Data: data}
}

// BytesValues returns a BYTES tensor's elements, each a slice of t.Data.
func BytesValues(t Tensor) ([][]byte, error) {
	if t.DataType != Bytes {
		return nil, fmt.Errorf("tensor %q is %s, not BYTES", t.Name, t.DataType)
	}
	n, err := CountBytesElements(t.Data)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	out := make([][]byte, n)
	data := t.Data
	for i := range out {
		l := binary.LittleEndian.Uint32(data)
		out[i] = data[4 : 4+l : 4+l]
		data = data[4+l:]
	}
	return out, nil
}

// FP16Values decodes an FP16 tensor to float32.
func FP16Values(t Tensor) ([]float32, error) {
	if t.DataType != FP16 {
		return nil, fmt.Errorf("tensor %q is %s, not FP16", t.Name, t.DataType)
	}
	out := make([]float32, len(t.Data)/2)
	for i := range out {
		out[i] = Float16ToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
	}
	return out, nil
}

func putElement[T Number](b []byte, dt DataType, v T) {
	switch dt {
	case Int8, Uint8:
		b[0] = byte(v)
	case Int16, Uint16:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case Int32, Uint32:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case Int64, Uint64:
		binary.LittleEndian.PutUint64(b, uint64(v))
	case FP32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v)))
	case FP64:
		binary.LittleEndian.PutUint64(b, math.Float64bits(float64(v)))
	}
}

func getElement[T Number](b []byte, dt DataType) T {
	switch dt {
	case Int8:
		return T(int8(b[0]))
	case Uint8:
		return T(b[0])
	case Int16:
		return T(int16(binary.LittleEndian.Uint16(b)))
	case Uint16:
		return T(binary.LittleEndian.Uint16(b))
	case Int32:
		return T(int32(binary.LittleEndian.Uint32(b)))
	case Uint32:
		return T(binary.LittleEndian.Uint32(b))
	case Int64:
		return T(int64(binary.LittleEndian.Uint64(b)))
	case Uint64:
		return T(binary.LittleEndian.Uint64(b))
	case FP32:
		return T(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case FP64:
		return T(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	return 0
}

// AppendUint appends the low size bytes (1, 2, 4 or 8) of v to dst,
// little-endian: how every integer element of a tensor is laid out.
func AppendUint(dst []byte, v uint64, size int) []byte {
	switch size {
	case 1:
		return append(dst, byte(v))
	case 2:
		return binary.LittleEndian.AppendUint16(dst, uint16(v))
	case 4:
		return binary.LittleEndian.AppendUint32(dst, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(dst, v)
}

// FromFloat64 returns a tensor of datatype dt holding values converted
// from float64, as configuration files give numbers: truncated towards
// zero for integers, rounded to nearest for FP16 and BF16, non-zero as
// true for BOOL. BYTES is not numeric and gets no data.
func FromFloat64(name string, dt DataType, shape []int64, values []float64) Tensor {
	size := dt.Size()
	data := make([]byte, len(values)*size)
	for i, v := range values {
		b := data[i*size:]
		switch dt {
		case Bool:
			if v != 0 {
				b[0] = 1
			}
		case FP16:
			binary.LittleEndian.PutUint16(b, Float32ToFloat16(float32(v)))
		case BF16:
			bits := math.Float32bits(float32(v))
			binary.LittleEndian.PutUint16(b, uint16((bits+0x7fff+(bits>>16)&1)>>16))
		default:
			putElement(b, dt, v)
		}
	}
	return Tensor{Name: name, DataType: dt, Shape: shape, Data: data}
}
