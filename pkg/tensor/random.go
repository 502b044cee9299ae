package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// Random returns a tensor of the given type and shape: floating-point
// elements uniform in [0, 1) drawn from r, integer and boolean elements 1
// (valid as a token id, an attention mask and a flag alike, where a random
// integer could index past a table or mask a whole sequence out), and BYTES
// elements the string "1".
func Random(name string, dt DataType, shape []int64, r *rand.Rand) Tensor {
	n := Elements(shape)
	t := Tensor{Name: name, DataType: dt, Shape: shape}
	if dt == Bytes {
		for range n {
			t.Data = binary.LittleEndian.AppendUint32(t.Data, 1)
			t.Data = append(t.Data, '1')
		}
		return t
	}
	size := dt.Size()
	t.Data = make([]byte, n*int64(size))
	for i := range n {
		b := t.Data[i*int64(size):]
		switch dt {
		case FP32:
			binary.LittleEndian.PutUint32(b, math.Float32bits(r.Float32()))
		case FP64:
			binary.LittleEndian.PutUint64(b, math.Float64bits(r.Float64()))
		case FP16:
			binary.LittleEndian.PutUint16(b, Float32ToFloat16(r.Float32()))
		case BF16:
			binary.LittleEndian.PutUint16(b, uint16(math.Float32bits(r.Float32())>>16))
		default:
			b[0] = 1 // little-endian: the low byte carries the value
		}
	}
	return t
}
