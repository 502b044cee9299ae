package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/infer-serving/infer/pkg/tensor"
)

// appendJSONData appends the elements of a JSON "data" value (a flat or
// nested array, or a lone scalar) to dst in dt's binary layout, and returns
// how many elements it held; nothing but whitespace may follow the value.
func appendJSONData(dst []byte, raw []byte, dt tensor.DataType) ([]byte, int64, error) {
	s := scanner{b: raw}
	dst, n, err := s.data(dst, dt)
	if err == nil {
		err = s.end()
	}
	return dst, n, err
}

// data reads a JSON "data" value (a flat or nested array, or a lone
// scalar) and appends its elements to dst in dt's binary layout, in one
// pass over the text, returning how many elements it held. Nesting is
// only checked for balance: the element count is checked against the
// shape by the caller, as the protocol's row-major flattening prescribes.
// Malformed JSON is a *syntaxError; an element that does not fit dt is
// another error that names the element.
func (s *scanner) data(dst []byte, dt tensor.DataType) ([]byte, int64, error) {
	var (
		n     int64
		depth int
		// wantValue: a value, '[' or (just after '[') ']' may come next;
		// otherwise ',' or ']' must.
		wantValue = true
		justOpen  = false
	)
	for {
		c := s.peek()
		switch {
		case c == 0 && s.i == len(s.b):
			return dst, n, s.syntax("unterminated array")
		case c == '[':
			if !wantValue {
				return dst, n, s.syntax("unexpected '['")
			}
			depth++
			justOpen = true
			s.i++
		case c == ']':
			if depth == 0 || wantValue && !justOpen {
				return dst, n, s.syntax("unexpected ']'")
			}
			depth--
			wantValue, justOpen = false, false
			s.i++
		case c == ',':
			if wantValue || depth == 0 {
				return dst, n, s.syntax("unexpected ','")
			}
			wantValue = true
			s.i++
		default:
			if !wantValue || c == '}' {
				return dst, n, s.syntax("unexpected %s: want ',' or ']'", s.describe())
			}
			if dt == tensor.FP32 {
				if f, ok := s.float32(); ok {
					dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
					n++
					// The run of "number,number,..." that makes up most of
					// a body: each comma and the number after it are read
					// here, not by a turn of the loop each. Anything else
					// (a space, a bracket, a number float32 declines) goes
					// back to the loop, at the comma.
					for depth > 0 && s.i < len(s.b) && s.b[s.i] == ',' {
						s.i++
						f, ok := s.float32()
						if !ok {
							s.i--
							break
						}
						dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
						n++
					}
					wantValue, justOpen = false, false
					if depth == 0 {
						return dst, n, nil
					}
					continue
				}
			}
			var err error
			start := s.i
			if dst, err = s.element(dst, dt); err != nil {
				if errSyntax(err) {
					return dst, n, err
				}
				return dst, n, fmt.Errorf("element %d (byte %d): %w", n, start, err)
			}
			n++
			wantValue, justOpen = false, false
		}
		if depth == 0 && !wantValue {
			return dst, n, nil
		}
	}
}

// element parses the scalar at the scanner and appends it.
func (s *scanner) element(dst []byte, dt tensor.DataType) ([]byte, error) {
	if dt == tensor.Bytes {
		if s.b[s.i] != '"' {
			return dst, errors.New("BYTES elements must be JSON strings")
		}
		start := s.i
		end, plain, err := stringEnd(s.b, start)
		if err != nil {
			return dst, err
		}
		str := s.b[start+1 : end]
		if !plain && bytes.IndexByte(str, '\\') >= 0 {
			// Only escapes need decoding: raw bytes that are not UTF-8
			// travel as they are.
			var v string
			if err := json.Unmarshal(s.b[start:end+1], &v); err != nil {
				return dst, &syntaxError{msg: err.Error(), at: start}
			}
			str = []byte(v)
		}
		s.i = end + 1
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(str)))
		return append(dst, str...), nil
	}
	if c := s.b[s.i]; c == '"' || c == '{' {
		if _, err := s.value(false, 0); err != nil {
			return dst, err
		}
		return dst, fmt.Errorf("a %s is not a valid %s", map[byte]string{'"': "string", '{': "object"}[c], dt)
	}
	start := s.i
	tok := s.token() // not retained: errors below copy it
	if tok == "" {
		return dst, s.syntax("unexpected %s", s.describe())
	}
	dst, err := appendScalar(dst, tok, dt)
	if err != nil {
		if _, ok := parseNumber(tok); !ok && tok != "true" && tok != "false" && tok != "null" {
			s.i = start
			return dst, s.syntax("invalid value %s", Clip(tok))
		}
		if errors.Is(err, errFP16Range) {
			return dst, fmt.Errorf("%s is not a valid %s: %v", Clip(tok), dt, err)
		}
		return dst, fmt.Errorf("%s is not a valid %s", Clip(tok), dt)
	}
	return dst, nil
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
		if _, ok := parseNumber(tok); !ok {
			return dst, strconv.ErrSyntax
		}
		v, err := strconv.ParseInt(tok, 10, 8*dt.Size())
		if err != nil {
			return dst, err
		}
		return tensor.AppendUint(dst, uint64(v), dt.Size()), nil
	case tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64:
		if _, ok := parseNumber(tok); !ok {
			return dst, strconv.ErrSyntax
		}
		v, err := strconv.ParseUint(tok, 10, 8*dt.Size())
		if err != nil {
			return dst, err
		}
		return tensor.AppendUint(dst, v, dt.Size()), nil
	case tensor.FP32, tensor.FP16, tensor.BF16:
		v, err := parseFloat(tok, 32)
		if err != nil {
			return dst, err
		}
		f := float32(v)
		switch dt {
		case tensor.FP16:
			h := tensor.Float32ToFloat16(f)
			if h&0x7fff == 0x7c00 && !math.IsInf(v, 0) { // finite, past FP16's largest: it would become infinity
				return dst, errFP16Range
			}
			return binary.LittleEndian.AppendUint16(dst, h), nil
		case tensor.BF16:
			return binary.LittleEndian.AppendUint16(dst, bfloat16(f)), nil
		}
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(f)), nil
	case tensor.FP64:
		v, err := parseFloat(tok, 64)
		if err != nil {
			return dst, err
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v)), nil
	}
	return dst, fmt.Errorf("unsupported datatype %s", dt)
}

// errFP16Range refuses a number FP16 cannot hold: past ±65,504 it would
// round to infinity, which the protocol's JSON cannot even answer with.
var errFP16Range = fmt.Errorf("%w: beyond FP16's largest magnitude, 65504", strconv.ErrRange)

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
			dst = appendJSONString(dst, data[4:4+l])
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
