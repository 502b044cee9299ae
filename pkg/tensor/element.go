package tensor

import (
	"encoding/binary"
	"math"
)

// Float64At returns element i of a numeric tensor as a float64: integers
// and BOOL (0 or 1) by value, FP16 and BF16 widened exactly. It returns 0
// for BYTES, and panics when i is out of range, as indexing does.
func (t Tensor) Float64At(i int) float64 {
	switch t.DataType {
	case Bool:
		if t.Data[i] != 0 {
			return 1
		}
		return 0
	case FP16:
		return float64(Float16ToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:])))
	case BF16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16))
	case Bytes, Invalid:
		return 0
	}
	size := t.DataType.Size()
	return getElement[float64](t.Data[i*size:], t.DataType)
}
