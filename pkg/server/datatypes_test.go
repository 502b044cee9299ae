package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// allTypesInputs holds extreme values of every datatype but BYTES, [2,2]
// each, named as the bundled all-types model's inputs.
func allTypesInputs() []tensor.Tensor {
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

// Every datatype travels through infer serve exactly, in each encoding of
// each protocol: the all-types model returns its inputs unchanged.
func TestEveryDatatypeEndToEnd(t *testing.T) {
	_, hs := start(t, nil, Options{})
	_, c, _ := startGRPC(t)
	in := allTypesInputs()
	check := func(label string, names []string, data [][]byte) {
		t.Helper()
		if len(data) != len(in) {
			t.Fatalf("%s: %d outputs, want %d", label, len(data), len(in))
		}
		for i, want := range in {
			if names[i] != strings.Replace(want.Name, "_in", "_out", 1) || !bytes.Equal(data[i], want.Data) {
				t.Errorf("%s: %s = % x, want % x", label, names[i], data[i], want.Data)
			}
		}
	}
	for _, mode := range []struct {
		name          string
		binIn, binOut bool
	}{{"HTTP JSON", false, false}, {"HTTP binary", true, true}, {"HTTP JSON in, binary out", false, true}} {
		rep, resp := infer(t, hs.URL, "all-types", &protocol.InferRequest{Inputs: in, BinaryOutput: mode.binOut}, mode.binIn)
		if resp == nil {
			t.Fatalf("%s: %d %s", mode.name, rep.status, rep.body)
		}
		var names []string
		var data [][]byte
		for _, o := range resp.Outputs {
			names, data = append(names, o.Name), append(data, o.Data)
		}
		check(mode.name, names, data)
	}
	resp, err := c.ModelInfer(context.Background(), grpcRequest("all-types", in, true))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range resp.Outputs {
		names = append(names, o.Name)
	}
	check("gRPC raw", names, resp.RawOutputContents)
}

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
