package grpcapi

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/tensor"
)

// gRPC's typed contents, per datatype: values land exactly, and values
// that do not fit the datatype are refused.
func TestGRPCTypedContents(t *testing.T) {
	for _, tc := range []struct {
		dt   tensor.DataType
		c    *inferencepb.InferTensorContents
		want string // the little-endian bytes, or an error
	}{
		{tensor.Bool, &inferencepb.InferTensorContents{BoolContents: []bool{true, false}}, "01 00"},
		{tensor.Int8, &inferencepb.InferTensorContents{IntContents: []int32{-128, 127}}, "80 7f"},
		{tensor.Int8, &inferencepb.InferTensorContents{IntContents: []int32{-129, 0}}, "does not fit INT8"},
		{tensor.Int16, &inferencepb.InferTensorContents{IntContents: []int32{-2, 300}}, "fe ff 2c 01"},
		{tensor.Int32, &inferencepb.InferTensorContents{IntContents: []int32{-1, 1}}, "ff ff ff ff 01 00 00 00"},
		{tensor.Int64, &inferencepb.InferTensorContents{Int64Contents: []int64{-1, 2}}, "ff ff ff ff ff ff ff ff 02 00 00 00 00 00 00 00"},
		{tensor.Uint8, &inferencepb.InferTensorContents{UintContents: []uint32{0, 255}}, "00 ff"},
		{tensor.Uint8, &inferencepb.InferTensorContents{UintContents: []uint32{256, 0}}, "does not fit UINT8"},
		{tensor.Uint16, &inferencepb.InferTensorContents{UintContents: []uint32{1, 65535}}, "01 00 ff ff"},
		{tensor.Uint32, &inferencepb.InferTensorContents{UintContents: []uint32{1, 2}}, "01 00 00 00 02 00 00 00"},
		{tensor.Uint64, &inferencepb.InferTensorContents{Uint64Contents: []uint64{1, math.MaxUint64}}, "01 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff"},
		{tensor.FP32, &inferencepb.InferTensorContents{Fp32Contents: []float32{1, -2}}, "00 00 80 3f 00 00 00 c0"},
		{tensor.FP64, &inferencepb.InferTensorContents{Fp64Contents: []float64{1, 0}}, "00 00 00 00 00 00 f0 3f 00 00 00 00 00 00 00 00"},
		{tensor.Bytes, &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("ab"), {}}}, "02 00 00 00 61 62 00 00 00 00"},
		{tensor.FP16, &inferencepb.InferTensorContents{}, "raw_input_contents"},
		{tensor.Int32, &inferencepb.InferTensorContents{IntContents: []int32{1}}, "declares 2 elements, contents hold 1"},
	} {
		got, err := typedContents(tc.c, tc.dt, 2)
		msg := fmt.Sprintf("% x", got)
		if err != nil {
			msg = err.Error()
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s %v: %q, want %q", tc.dt, tc.c, msg, tc.want)
		}
	}
}
