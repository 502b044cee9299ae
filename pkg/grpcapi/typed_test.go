package grpcapi

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/tensor"
)

// typedBytes counts, then decodes, contents of n elements of dt.
func typedBytes(contents [][]byte, dt tensor.DataType, n int64) ([]byte, error) {
	size, err := typedSize(contents, dt, n)
	if err != nil {
		return nil, err
	}
	return typedContents(contents, dt, size)
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
		{tensor.FP32, &inferencepb.InferTensorContents{IntContents: []int32{1, 2}}, "FP32 travels in fp32_contents, the contents hold int_contents"},
	} {
		b, err := proto.Marshal(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := typedBytes([][]byte{b}, tc.dt, 2)
		msg := fmt.Sprintf("% x", got)
		if err != nil {
			msg = err.Error()
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s %v: %q, want %q", tc.dt, tc.c, msg, tc.want)
		}
	}
}

// Repeated scalars may come packed or one field each (protobuf's parsers
// take both), and a contents message met twice merges: the elements are
// the same whichever way they travel.
func TestGRPCTypedContentsUnpackedAndMerged(t *testing.T) {
	var unpacked, packed []byte
	for _, v := range []int64{-1, 300} {
		unpacked = protowire.AppendTag(unpacked, 3, protowire.VarintType)
		unpacked = protowire.AppendVarint(unpacked, uint64(v))
	}
	packed = protowire.AppendTag(packed, 3, protowire.BytesType)
	packed = protowire.AppendBytes(packed, protowire.AppendVarint(protowire.AppendVarint(nil, math.MaxUint64), 300))
	var half1, half2 []byte
	half1 = protowire.AppendTag(half1, 3, protowire.VarintType)
	half1 = protowire.AppendVarint(half1, math.MaxUint64)
	half2 = protowire.AppendTag(half2, 3, protowire.BytesType)
	half2 = protowire.AppendBytes(half2, protowire.AppendVarint(nil, 300))
	want := "ff ff ff ff ff ff ff ff 2c 01 00 00 00 00 00 00"
	for name, contents := range map[string][][]byte{"unpacked": {unpacked}, "packed": {packed}, "merged": {half1, half2}} {
		got, err := typedBytes(contents, tensor.Int64, 2)
		if err != nil || fmt.Sprintf("% x", got) != want {
			t.Errorf("%s: % x %v, want %s", name, got, err, want)
		}
	}
	// An element of the field in a wire type it does not have is an
	// unknown field to protobuf: neither counted nor decoded (decoding it
	// once let such elements past the request's byte bound).
	var odd []byte
	odd = protowire.AppendTag(odd, 7, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 0)
	odd = protowire.AppendTag(odd, 7, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	if got, err := typedBytes([][]byte{odd, odd}, tensor.FP64, 2); err != nil || fmt.Sprintf("% x", got) != "00 00 00 00 00 00 f0 3f 00 00 00 00 00 00 f0 3f" {
		t.Errorf("fp64_contents with varint elements: % x %v, want the packed elements alone", got, err)
	}
	// A packed run of fixed-width elements cut short is malformed.
	var cut []byte
	cut = protowire.AppendTag(cut, 6, protowire.BytesType)
	cut = protowire.AppendBytes(cut, []byte{0, 0, 128, 63, 0, 0})
	if _, err := typedBytes([][]byte{cut}, tensor.FP32, 1); err == nil || !strings.Contains(err.Error(), "fp32_contents: malformed protobuf") {
		t.Errorf("a cut packed run: %v", err)
	}
}
