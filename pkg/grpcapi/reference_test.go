package grpcapi

// The decoder this package had before it read requests from their wire
// bytes: protobuf's unmarshalling into the generated types, then each
// input's contents converted. It is the oracle the wire decoder is
// fuzzed against.

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// referenceInputs converts a ModelInferRequest's inputs: raw_input_contents,
// one entry per input in order, or each input's typed contents.
func referenceInputs(req *inferencepb.ModelInferRequest) ([]tensor.Tensor, error) {
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, badRequest("%d raw_input_contents for %d inputs", len(raw), len(req.GetInputs()))
	}
	out := make([]tensor.Tensor, len(req.GetInputs()))
	for i, in := range req.GetInputs() {
		if err := protocol.CheckName(in.GetName(), "input"); err != nil {
			return nil, err
		}
		dt, ok := tensor.ParseDataType(in.GetDatatype())
		if !ok {
			return nil, badRequest("input %q: unknown datatype %s", in.GetName(), protocol.Clip(in.GetDatatype()))
		}
		n, err := tensor.ElementsChecked(in.GetShape())
		if err != nil {
			return nil, badRequest("input %q: %v", in.GetName(), err)
		}
		if n > protocol.MaxTensorElements {
			return nil, badRequest("input %q: shape %v declares %d elements, more than the %d a tensor may hold", in.GetName(), in.GetShape(), n, int64(protocol.MaxTensorElements))
		}
		t := tensor.Tensor{Name: in.GetName(), DataType: dt, Shape: in.GetShape()}
		if len(raw) > 0 {
			if in.GetContents() != nil {
				return nil, badRequest("input %q: both raw_input_contents and typed contents", in.GetName())
			}
			t.Data = raw[i]
			if dt != tensor.Bytes {
				if want := n * int64(dt.Size()); int64(len(t.Data)) != want { // n <= MaxTensorElements: no overflow
					return nil, badRequest("input %q: shape %v of %s declares %d elements and needs %d bytes, raw_input_contents[%d] holds %d", in.GetName(), in.GetShape(), dt, n, want, i, len(t.Data))
				}
			}
		} else {
			data, err := referenceContents(in.GetContents(), dt, n)
			if err != nil {
				return nil, badRequest("input %q: shape %v: %v", in.GetName(), in.GetShape(), err)
			}
			t.Data = data
		}
		if err := t.Validate(); err != nil {
			return nil, badRequest("%v", err)
		}
		out[i] = t
	}
	return out, nil
}

// referenceLen returns how many elements the repeated field of c that dt
// travels in holds; ok is false for a type with no typed field.
func referenceLen(c *inferencepb.InferTensorContents, dt tensor.DataType) (n int, ok bool) {
	switch dt {
	case tensor.Bool:
		return len(c.GetBoolContents()), true
	case tensor.Int8, tensor.Int16, tensor.Int32:
		return len(c.GetIntContents()), true
	case tensor.Int64:
		return len(c.GetInt64Contents()), true
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		return len(c.GetUintContents()), true
	case tensor.Uint64:
		return len(c.GetUint64Contents()), true
	case tensor.FP32:
		return len(c.GetFp32Contents()), true
	case tensor.FP64:
		return len(c.GetFp64Contents()), true
	case tensor.Bytes:
		return len(c.GetBytesContents()), true
	}
	return 0, false
}

// referenceContents encodes the repeated field of c that dt travels in, which
// must hold exactly n elements. The count is checked before anything is
// allocated, so the allocation is bounded by the message received.
func referenceContents(c *inferencepb.InferTensorContents, dt tensor.DataType, n int64) ([]byte, error) {
	got, ok := referenceLen(c, dt)
	if !ok {
		return nil, fmt.Errorf("%s travels only in raw_input_contents", dt)
	}
	if int64(got) != n {
		return nil, fmt.Errorf("declares %d elements, contents hold %d", n, got)
	}
	size := dt.Size()
	var out []byte
	if dt != tensor.Bytes {
		out = make([]byte, 0, n*int64(size))
	}
	switch dt {
	case tensor.Bool:
		v := c.GetBoolContents()
		for _, b := range v {
			if b {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
	case tensor.Int8, tensor.Int16, tensor.Int32:
		v := c.GetIntContents()
		lo, hi := -(int64(1) << (8*size - 1)), int64(1)<<(8*size-1)-1
		for k, x := range v {
			if int64(x) < lo || int64(x) > hi {
				return nil, fmt.Errorf("element %d: %d does not fit %s", k, x, dt)
			}
			out = tensor.AppendUint(out, uint64(x), size)
		}
	case tensor.Int64:
		v := c.GetInt64Contents()
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, uint64(x))
		}
	case tensor.Uint8, tensor.Uint16, tensor.Uint32:
		v := c.GetUintContents()
		for k, x := range v {
			if uint64(x) >= uint64(1)<<(8*size) && size < 4 {
				return nil, fmt.Errorf("element %d: %d does not fit %s", k, x, dt)
			}
			out = tensor.AppendUint(out, uint64(x), size)
		}
	case tensor.Uint64:
		v := c.GetUint64Contents()
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, x)
		}
	case tensor.FP32:
		v := c.GetFp32Contents()
		for _, x := range v {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
		}
	case tensor.FP64:
		v := c.GetFp64Contents()
		for _, x := range v {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
		}
	case tensor.Bytes:
		v := c.GetBytesContents()
		for _, b := range v {
			out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
			out = append(out, b...)
		}
	}
	return out, nil
}
