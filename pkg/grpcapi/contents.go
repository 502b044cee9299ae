package grpcapi

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// wireError is a request's fault: a bad request (protocol.ErrBadRequest),
// its message built outward as at adds each field it lies in.
type wireError struct{ msg string }

func (e *wireError) Error() string { return protocol.ErrBadRequest.Error() + ": " + e.msg }
func (e *wireError) Unwrap() error { return protocol.ErrBadRequest }

func badRequest(format string, args ...any) error {
	return &wireError{fmt.Sprintf(format, args...)}
}

// at prefixes err, when it is a request's fault, with where it lies:
// "inputs[2]: parameters: ...". Readers of nested fields return their
// errors without their place, so that no place is formatted unless a
// request is refused. Other errors (a bound's) pass as they are.
func at(where string, err error) error {
	if e, ok := err.(*wireError); ok {
		return &wireError{where + ": " + e.msg}
	}
	return err
}

// tensors decodes m's inputs: raw_input_contents, one entry per input in
// order, or each input's typed contents. Raw data is not copied; typed
// contents are counted before their tensor's bytes are made, so what is
// made is bounded by what the input's shape declares and the message
// holds, and check (core.Call.CheckInputBytes; nil: none) is asked about
// the inputs' bytes so far, this one's included, before they are.
func (m *inferMessage) tensors(check func(int64) error) ([]tensor.Tensor, error) {
	if len(m.raw) > 0 && len(m.raw) != len(m.inputs) {
		return nil, badRequest("%d raw_input_contents for %d inputs", len(m.raw), len(m.inputs))
	}
	if check == nil {
		check = func(int64) error { return nil }
	}
	var total int64
	for _, r := range m.raw {
		total += int64(len(r))
	}
	if err := check(total); err != nil {
		return nil, err
	}
	out := make([]tensor.Tensor, len(m.inputs))
	for i, b := range m.inputs {
		in, err := inputOf(b)
		if err != nil {
			return nil, at(fmt.Sprintf("inputs[%d]", i), err)
		}
		if err := protocol.CheckName(in.name, "input"); err != nil {
			return nil, err
		}
		dt, ok := tensor.ParseDataType(in.datatype)
		if !ok {
			return nil, badRequest("input %q: unknown datatype %s", in.name, protocol.Clip(in.datatype))
		}
		n, err := tensor.ElementsChecked(in.shape)
		if err != nil {
			return nil, badRequest("input %q: %v", in.name, err)
		}
		if n > protocol.MaxTensorElements {
			return nil, badRequest("input %q: shape %v declares %d elements, more than the %d a tensor may hold", in.name, in.shape, n, int64(protocol.MaxTensorElements))
		}
		t := tensor.Tensor{Name: in.name, DataType: dt, Shape: in.shape}
		if len(m.raw) > 0 {
			if in.contents != nil {
				return nil, badRequest("input %q: both raw_input_contents and typed contents", in.name)
			}
			t.Data = m.raw[i]
			if dt != tensor.Bytes {
				if want := n * int64(dt.Size()); int64(len(t.Data)) != want { // n <= MaxTensorElements: no overflow
					return nil, badRequest("input %q: shape %v of %s declares %d elements and needs %d bytes, raw_input_contents[%d] holds %d", in.name, in.shape, dt, n, want, i, len(t.Data))
				}
			}
		} else {
			size, err := typedSize(in.contents, dt, n)
			if err != nil {
				return nil, at(fmt.Sprintf("input %q: shape %v", in.name, in.shape), err)
			}
			total += size
			if err := check(total); err != nil {
				return nil, err
			}
			if t.Data, err = typedContents(in.contents, dt, size); err != nil {
				return nil, at(fmt.Sprintf("input %q: shape %v", in.name, in.shape), err)
			}
		}
		if err := t.Validate(); err != nil {
			return nil, badRequest("%v", err)
		}
		out[i] = t
	}
	return out, nil
}

// contentsFields are InferTensorContents' fields by number: the name and
// the wire type of one element.
var contentsFields = [...]struct {
	name string
	typ  protowire.Type
}{
	1: {"bool_contents", protowire.VarintType},
	2: {"int_contents", protowire.VarintType},
	3: {"int64_contents", protowire.VarintType},
	4: {"uint_contents", protowire.VarintType},
	5: {"uint64_contents", protowire.VarintType},
	6: {"fp32_contents", protowire.Fixed32Type},
	7: {"fp64_contents", protowire.Fixed64Type},
	8: {"bytes_contents", protowire.BytesType},
}

// contentsField is the field of InferTensorContents that dt travels in,
// 0 for a type with none (FP16, BF16: raw contents only).
func contentsField(dt tensor.DataType) protowire.Number {
	switch dt {
	case tensor.Bool:
		return 1
	case tensor.Int8, tensor.Int16, tensor.Int32:
		return 2
	case tensor.Int64:
		return 3
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		return 4
	case tensor.Uint64:
		return 5
	case tensor.FP32:
		return 6
	case tensor.FP64:
		return 7
	case tensor.Bytes:
		return 8
	}
	return 0
}

// typedSize counts the elements that contents (an InferTensorContents
// met once or more) carry for dt, which must be exactly n, checking every
// field's framing as protobuf would, and returns the bytes they take as
// dt's (a BYTES element's 4-byte length included). Elements of other
// fields are not read, as protobuf's message would leave them unread.
func typedSize(contents [][]byte, dt tensor.DataType, n int64) (int64, error) {
	want := contentsField(dt)
	if want == 0 {
		return 0, badRequest("%s travels only in raw_input_contents", dt)
	}
	var got, data int64
	other := ""
	for _, c := range contents {
		err := fields(c, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num < 1 || int(num) >= len(contentsFields) {
				return nil
			}
			f := contentsFields[num]
			k, bytes, err := countElements(f.typ, typ, v)
			if err != nil {
				return at(f.name, err)
			}
			if num == want {
				got, data = got+k, data+bytes
			} else if k > 0 && other == "" {
				other = f.name
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	if got != n {
		if got == 0 && other != "" {
			return 0, badRequest("declares %d elements; %s travels in %s, the contents hold %s", n, dt, contentsFields[want].name, other)
		}
		return 0, badRequest("declares %d elements, contents hold %d", n, got)
	}
	if dt == tensor.Bytes {
		return 4*n + data, nil
	}
	return n * int64(dt.Size()), nil
}

// typedContents encodes the elements that contents carry for dt, which
// typedSize counted at size bytes, each checked to fit dt. It reads what
// typedSize counted and nothing else: an element of dt's field in a wire
// type the field does not have is an unknown field to protobuf, skipped
// by both (decoded here once, such elements made 33M varints of an FP64
// field, uncounted, into 264 MB past the request's bound).
func typedContents(contents [][]byte, dt tensor.DataType, size int64) ([]byte, error) {
	want := contentsField(dt)
	elem := contentsFields[want].typ
	out := make([]byte, 0, size)
	for _, c := range contents {
		var err error
		_ = fields(c, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			if num != want || !carries(elem, typ) || err != nil {
				return nil
			}
			out, err = appendElements(out, dt, typ, v, x)
			if err == nil && int64(len(out)) > size {
				err = fmt.Errorf("%s: %d bytes decoded where %d were counted", contentsFields[want].name, len(out), size)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// carries reports whether a field whose elements are of wire type elem
// carries elements in wire type typ: one element in its own type, or a
// packed run of them (a scalar field's); any other wire type is an
// unknown field to protobuf.
func carries(elem, typ protowire.Type) bool {
	return typ == elem || typ == protowire.BytesType
}

// countElements counts the elements one field of the contents carries,
// given the wire type elem of one element: 1 for one element, the packed
// count for a packed run, 0 for a wire type the field does not have (an
// unknown field, to protobuf); bytes is the data of a bytes element.
func countElements(elem, typ protowire.Type, v []byte) (k, bytes int64, err error) {
	switch {
	case !carries(elem, typ):
		return 0, 0, nil
	case typ == elem && elem == protowire.BytesType:
		return 1, int64(len(v)), nil
	case typ == elem:
		return 1, 0, nil
	}
	switch elem { // a packed run
	case protowire.Fixed32Type, protowire.Fixed64Type:
		size := 4
		if elem == protowire.Fixed64Type {
			size = 8
		}
		if len(v)%size != 0 {
			return 0, 0, badRequest("malformed protobuf: a packed run of %d bytes, not whole %d-byte elements", len(v), size)
		}
		return int64(len(v) / size), 0, nil
	}
	for len(v) > 0 {
		_, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return 0, 0, malformed(n)
		}
		k, v = k+1, v[n:]
	}
	return k, 0, nil
}

// appendElements appends the elements of one field of dt's (an element of
// value x, or a packed run or bytes element v) as dt's bytes, each
// checked to fit dt. Its framing was checked by countElements.
func appendElements(out []byte, dt tensor.DataType, typ protowire.Type, v []byte, x uint64) ([]byte, error) {
	if dt == tensor.Bytes {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
		return append(out, v...), nil
	}
	if typ != protowire.BytesType {
		return appendElement(out, dt, x)
	}
	switch dt {
	case tensor.FP32, tensor.FP64:
		return append(out, v...), nil // packed fixed-width values are little-endian already
	}
	var err error
	for len(v) > 0 {
		x, n := protowire.ConsumeVarint(v)
		if out, err = appendElement(out, dt, x); err != nil {
			return out, err
		}
		v = v[n:]
	}
	return out, nil
}

// appendElement appends one element of a varint or fixed-width field as
// dt's bytes: x is the field's value as protobuf reads it (an int32 or
// uint32 field keeps the low 32 bits).
func appendElement(out []byte, dt tensor.DataType, x uint64) ([]byte, error) {
	size := dt.Size()
	switch dt {
	case tensor.Bool:
		if x != 0 {
			return append(out, 1), nil
		}
		return append(out, 0), nil
	case tensor.Int8, tensor.Int16, tensor.Int32:
		v := int64(int32(x))
		if lo, hi := -(int64(1) << (8*size - 1)), int64(1)<<(8*size-1)-1; v < lo || v > hi {
			return out, badRequest("element %d: %d does not fit %s", len(out)/size, v, dt)
		}
		return tensor.AppendUint(out, uint64(v), size), nil
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		v := uint64(uint32(x))
		if size < 4 && v >= uint64(1)<<(8*size) {
			return out, badRequest("element %d: %d does not fit %s", len(out)/size, v, dt)
		}
		return tensor.AppendUint(out, v, size), nil
	case tensor.Int64, tensor.Uint64:
		return binary.LittleEndian.AppendUint64(out, x), nil
	case tensor.FP32:
		return binary.LittleEndian.AppendUint32(out, uint32(x)), nil
	case tensor.FP64:
		return binary.LittleEndian.AppendUint64(out, x), nil
	}
	return out, badRequest("%s has no typed contents", dt)
}
