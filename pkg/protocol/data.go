package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/infer-serving/infer/pkg/tensor"
)

// appendJSONData appends the elements of a JSON "data" value (a flat or
// nested array, or a lone scalar) to dst in dt's binary layout, and returns
// how many elements it held. Nesting is only checked for balance: the
// element count is checked against the shape by the caller, as the
// protocol's row-major flattening prescribes.
func appendJSONData(dst []byte, raw []byte, dt tensor.DataType) ([]byte, int64, error) {
	var (
		n     int64
		depth int
		// wantValue: a value, '[' or (just after '[') ']' may come next;
		// otherwise ',' or ']' must.
		wantValue = true
		justOpen  = false
		i         = 0
	)
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '[':
			if !wantValue {
				return dst, n, fmt.Errorf("unexpected '[' at byte %d", i)
			}
			depth++
			justOpen = true
			i++
		case c == ']':
			if depth == 0 || wantValue && !justOpen {
				return dst, n, fmt.Errorf("unexpected ']' at byte %d", i)
			}
			depth--
			wantValue, justOpen = false, false
			i++
		case c == ',':
			if wantValue || depth == 0 {
				return dst, n, fmt.Errorf("unexpected ',' at byte %d", i)
			}
			wantValue = true
			i++
		default:
			if !wantValue {
				return dst, n, fmt.Errorf("unexpected value at byte %d: want ',' or ']'", i)
			}
			var err error
			start := i
			if dst, i, err = appendElement(dst, raw, i, dt); err != nil {
				return dst, n, fmt.Errorf("element %d (byte %d): %w", n, start, err)
			}
			n++
			wantValue, justOpen = false, false
			if depth == 0 && i < len(raw) && !onlySpace(raw[i:]) {
				return dst, n, fmt.Errorf("unexpected data after the value at byte %d", i)
			}
		}
	}
	if depth != 0 {
		return dst, n, errors.New("unterminated array")
	}
	return dst, n, nil
}

func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// appendElement parses the scalar starting at raw[i] and appends it.
func appendElement(dst []byte, raw []byte, i int, dt tensor.DataType) ([]byte, int, error) {
	if dt == tensor.Bytes {
		if raw[i] != '"' {
			return dst, i, errors.New("BYTES elements must be JSON strings")
		}
		end, escaped := stringEnd(raw, i)
		if end < 0 {
			return dst, i, errors.New("unterminated string")
		}
		s := raw[i+1 : end]
		if escaped {
			var v string
			if err := json.Unmarshal(raw[i:end+1], &v); err != nil {
				return dst, i, err
			}
			s = []byte(v)
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
		return append(dst, s...), end + 1, nil
	}
	j := i
	for j < len(raw) && raw[j] != ',' && raw[j] != ']' && raw[j] != ' ' && raw[j] != '\t' && raw[j] != '\n' && raw[j] != '\r' {
		j++
	}
	tok := unsafe.String(unsafe.SliceData(raw[i:j]), j-i) // not retained: errors below copy it
	dst, err := appendScalar(dst, tok, dt)
	if err != nil {
		return dst, i, fmt.Errorf("%q is not a valid %s", string(raw[i:j]), dt)
	}
	return dst, j, nil
}

// stringEnd returns the index of the quote closing the string that opens
// at raw[i], and whether it holds escapes; -1 when it is unterminated.
func stringEnd(raw []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j, escaped
		}
	}
	return -1, escaped
}

// appendScalar appends one element spelt tok in JSON.
func appendScalar(dst []byte, tok string, dt tensor.DataType) ([]byte, error) {
	switch dt {
	case tensor.Bool:
		switch tok {
		case "true":
			return append(dst, 1), nil
		case "false":
			return append(dst, 0), nil
		}
		return dst, errors.New("want true or false")
	case tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64:
		v, err := strconv.ParseInt(tok, 10, 8*dt.Size())
		if err != nil {
			return dst, err
		}
		return tensor.AppendUint(dst, uint64(v), dt.Size()), nil
	case tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64:
		v, err := strconv.ParseUint(tok, 10, 8*dt.Size())
		if err != nil {
			return dst, err
		}
		return tensor.AppendUint(dst, v, dt.Size()), nil
	case tensor.FP32, tensor.FP16, tensor.BF16:
		v, err := strconv.ParseFloat(tok, 32)
		if err != nil {
			return dst, err
		}
		f := float32(v)
		switch dt {
		case tensor.FP16:
			return binary.LittleEndian.AppendUint16(dst, tensor.Float32ToFloat16(f)), nil
		case tensor.BF16:
			return binary.LittleEndian.AppendUint16(dst, bfloat16(f)), nil
		}
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(f)), nil
	case tensor.FP64:
		v, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return dst, err
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v)), nil
	}
	return dst, fmt.Errorf("unsupported datatype %s", dt)
}

// bfloat16 rounds f to bfloat16, to nearest even; NaN stays NaN.
func bfloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if f != f {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// appendJSONValues appends t's elements to dst as a flat JSON array.
// Non-finite floating-point values, which JSON cannot spell, are written
// as null; ask for binary_data to receive them exactly.
func appendJSONValues(dst []byte, t tensor.Tensor) ([]byte, error) {
	dst = append(dst, '[')
	size := t.DataType.Size()
	data := t.Data
	for k := 0; len(data) > 0; k++ {
		if k > 0 {
			dst = append(dst, ',')
		}
		switch t.DataType {
		case tensor.Bytes:
			if len(data) < 4 {
				return dst, fmt.Errorf("output %q: truncated BYTES element", t.Name)
			}
			l := binary.LittleEndian.Uint32(data)
			if uint64(l) > uint64(len(data)-4) {
				return dst, fmt.Errorf("output %q: truncated BYTES element", t.Name)
			}
			s, _ := json.Marshal(string(data[4 : 4+l])) // a string always marshals
			dst = append(dst, s...)
			data = data[4+l:]
			continue
		case tensor.Bool:
			dst = strconv.AppendBool(dst, data[0] != 0)
		case tensor.Int8:
			dst = strconv.AppendInt(dst, int64(int8(data[0])), 10)
		case tensor.Int16:
			dst = strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(data))), 10)
		case tensor.Int32:
			dst = strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(data))), 10)
		case tensor.Int64:
			dst = strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(data)), 10)
		case tensor.Uint8:
			dst = strconv.AppendUint(dst, uint64(data[0]), 10)
		case tensor.Uint16:
			dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint16(data)), 10)
		case tensor.Uint32:
			dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(data)), 10)
		case tensor.Uint64:
			dst = strconv.AppendUint(dst, binary.LittleEndian.Uint64(data), 10)
		case tensor.FP16:
			dst = appendFloat(dst, float64(tensor.Float16ToFloat32(binary.LittleEndian.Uint16(data))), 32)
		case tensor.BF16:
			dst = appendFloat(dst, float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(data))<<16)), 32)
		case tensor.FP32:
			dst = appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(data))), 32)
		case tensor.FP64:
			dst = appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(data)), 64)
		default:
			return dst, fmt.Errorf("output %q: unsupported datatype %s", t.Name, t.DataType)
		}
		if len(data) < size {
			return dst, fmt.Errorf("output %q: %d trailing bytes", t.Name, len(data))
		}
		data = data[size:]
	}
	return append(dst, ']'), nil
}

func appendFloat(dst []byte, v float64, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, bits)
}
