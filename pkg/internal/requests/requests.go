// Package requests builds inference requests for the tests of the
// server and its front ends: tensors of every datatype, and the gRPC
// messages that carry tensors, raw or typed.
package requests

import (
	"encoding/binary"
	"math"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/tensor"
)

// AllTypes holds extreme values of every datatype but BYTES, [2,2]
// each, named as the bundled all-types model's inputs.
func AllTypes() []tensor.Tensor {
	s := []int64{2, 2}
	bf16 := func(v ...float32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, uint16(math.Float32bits(x)>>16))
		}
		return b
	}
	return []tensor.Tensor{
		tensor.NewBool("bool_in", s, []bool{true, false, false, true}),
		tensor.New("uint8_in", s, []uint8{0, 1, 254, 255}),
		tensor.New("uint16_in", s, []uint16{0, 1, 65534, 65535}),
		tensor.New("uint32_in", s, []uint32{0, 1, math.MaxUint32 - 1, math.MaxUint32}),
		tensor.New("uint64_in", s, []uint64{0, 1, math.MaxUint64 - 1, math.MaxUint64}),
		tensor.New("int8_in", s, []int8{math.MinInt8, -1, 0, math.MaxInt8}),
		tensor.New("int16_in", s, []int16{math.MinInt16, -1, 0, math.MaxInt16}),
		tensor.New("int32_in", s, []int32{math.MinInt32, -1, 0, math.MaxInt32}),
		tensor.New("int64_in", s, []int64{math.MinInt64, -1, 0, math.MaxInt64}),
		tensor.NewFP16("fp16_in", s, []float32{-65504, -0.5, 6.1035156e-05, 65504}),
		{Name: "bf16_in", DataType: tensor.BF16, Shape: s, Data: bf16(-3.3895314e38, -1.5, 1.0, 3.3895314e38)},
		tensor.New("fp32_in", s, []float32{-math.MaxFloat32, -1e-45, 0.1, math.MaxFloat32}),
		tensor.New("fp64_in", s, []float64{-math.MaxFloat64, 5e-324, 0.1, math.Pi}),
	}
}

// GRPC builds a ModelInferRequest from tensors, raw or typed.
func GRPC(model string, inputs []tensor.Tensor, raw bool) *inferencepb.ModelInferRequest {
	req := &inferencepb.ModelInferRequest{ModelName: model, Id: "g-" + model}
	for _, t := range inputs {
		in := &inferencepb.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
		if raw {
			req.RawInputContents = append(req.RawInputContents, t.Data)
		} else {
			in.Contents = &inferencepb.InferTensorContents{}
			switch t.DataType {
			case tensor.FP32:
				in.Contents.Fp32Contents, _ = tensor.Values[float32](t)
			case tensor.FP64:
				in.Contents.Fp64Contents, _ = tensor.Values[float64](t)
			case tensor.Int64:
				in.Contents.Int64Contents, _ = tensor.Values[int64](t)
			case tensor.Uint8:
				for _, b := range t.Data {
					in.Contents.UintContents = append(in.Contents.UintContents, uint32(b))
				}
			case tensor.Bool:
				for _, b := range t.Data {
					in.Contents.BoolContents = append(in.Contents.BoolContents, b != 0)
				}
			case tensor.Bytes:
				for d := t.Data; len(d) > 0; {
					n := binary.LittleEndian.Uint32(d)
					in.Contents.BytesContents = append(in.Contents.BytesContents, d[4:4+n])
					d = d[4+n:]
				}
			}
		}
		req.Inputs = append(req.Inputs, in)
	}
	return req
}
