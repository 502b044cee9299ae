package grpcapi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// checkInputs asserts what every tensor decoded from a gRPC request owes:
// it validates, a fixed-size type's data is exactly elements x size
// bytes, and all the data together is bounded by the message it came from
// (a packed varint of one byte becomes at most 8 bytes).
func checkInputs(t *testing.T, inputs []tensor.Tensor, msgLen int) {
	t.Helper()
	total := 0
	for _, in := range inputs {
		if err := in.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		n, err := tensor.ElementsChecked(in.Shape)
		if err != nil {
			t.Fatalf("decoded a tensor of shape %v: %v", in.Shape, err)
		}
		if size := in.DataType.Size(); size > 0 && int64(len(in.Data)) != n*int64(size) {
			t.Fatalf("%s %v: %d bytes for %d elements", in.DataType, in.Shape, len(in.Data), n)
		}
		total += len(in.Data)
	}
	if total > 8*msgLen {
		t.Fatalf("%d bytes of tensor data from a %d-byte message", total, msgLen)
	}
}

// decodeWire decodes msg as the server does an inference request: the
// codec's scan, then the tensors, the requested outputs and the
// parameters.
func decodeWire(msg []byte) (*inferMessage, []tensor.Tensor, error) {
	m := new(inferMessage)
	if err := m.scan(msg); err != nil {
		return m, nil, err
	}
	inputs, err := m.tensors(nil)
	if err != nil {
		return m, nil, err
	}
	for _, b := range m.outputs {
		if _, _, err := requestedOutput(b); err != nil {
			return m, nil, err
		}
	}
	_, err = parameters(m.params)
	return m, inputs, err
}

// sameAsReference asserts that the wire decoder reads msg as protobuf
// and the reference decoder do: both refuse it, or both give the same
// names, id and tensors.
func sameAsReference(t *testing.T, msg []byte) {
	t.Helper()
	m, inputs, err := decodeWire(msg)
	if err != nil && !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("an error that is not a bad request: %v", err)
	}
	var req inferencepb.ModelInferRequest
	perr := proto.Unmarshal(msg, &req)
	var want []tensor.Tensor
	if perr == nil {
		want, perr = referenceInputs(&req)
	}
	switch {
	case err != nil && perr != nil:
		return
	case err != nil:
		t.Fatalf("the wire decoder refuses what protobuf reads: %v", err)
	case perr != nil:
		t.Fatalf("the wire decoder reads what protobuf refuses (%v)", perr)
	}
	if m.model != req.GetModelName() || m.version != req.GetModelVersion() || m.id != req.GetId() {
		t.Fatalf("names %q %q %q, protobuf's %q %q %q", m.model, m.version, m.id, req.GetModelName(), req.GetModelVersion(), req.GetId())
	}
	if len(inputs) != len(want) {
		t.Fatalf("%d inputs, protobuf's %d", len(inputs), len(want))
	}
	for i := range inputs {
		a, b := inputs[i], want[i]
		if a.Name != b.Name || a.DataType != b.DataType || !slices.Equal(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("input %d: %s %v %v %x, protobuf's %s %v %v %x", i, a.Name, a.DataType, a.Shape, a.Data, b.Name, b.DataType, b.Shape, b.Data)
		}
	}
	checkInputs(t, inputs, len(msg))
	if len(m.outputs) != len(req.GetOutputs()) || len(m.params) < len(req.GetParameters()) {
		t.Fatalf("%d outputs and %d parameters, protobuf's %d and %d", len(m.outputs), len(m.params), len(req.GetOutputs()), len(req.GetParameters()))
	}
}

func grpcInput(name, dt string, shape ...int64) *inferencepb.ModelInferRequest_InferInputTensor {
	return &inferencepb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape}
}

// FuzzGRPCInputs: any bytes, decoded as a ModelInferRequest the way the
// gRPC server receives it, are refused with ErrBadRequest exactly when
// protobuf and the reference decoder refuse them, and otherwise give the
// same tensors, which match their shapes and are bounded by the message.
func FuzzGRPCInputs(f *testing.F) {
	seeds := []*inferencepb.ModelInferRequest{
		requests.GRPC("mlp", []tensor.Tensor{tensor.New("image", []int64{1, 4}, []float32{1, 2, 3, 4})}, false),
		requests.GRPC("mlp", []tensor.Tensor{tensor.New("image", []int64{1, 4}, []float32{1, 2, 3, 4})}, true),
		requests.GRPC("m", requests.AllTypes(), true),
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "s", Datatype: "BYTES", Shape: []int64{2},
			Contents: &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("ab"), {}}}}}},
		// Hostile: declared far beyond the contents, overflowing, negative.
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{2147483648},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1}}}}},
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{grpcInput("x", "FP32", 2147483648)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{grpcInput("x", "INT64", 1<<32, 1<<32)}, RawInputContents: [][]byte{{1}}},
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{grpcInput("x", "UINT8", -1)}, RawInputContents: [][]byte{{1}}},
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{grpcInput("s", "BYTES", 2147483648)}, RawInputContents: [][]byte{{1, 0, 0, 0, 'a'}}},
		{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{grpcInput("s", "BYTES", 1)}, RawInputContents: [][]byte{{255, 255, 255, 127, 'a'}}},
	}
	// Elements of a typed field in a wire type it does not have (unknown
	// fields to protobuf), found by a hostile run: text-encoder's BYTES
	// with a varint field 8, all-types' FP64 with a varint field 7.
	for _, h := range []string{
		"0a0c746578742d656e636f6465722a210a0474657874120542595445531a01012a0f420b68656c6c6f20776f726c644000",
		"0a016d2a1a0a01781204465036341a01012a0e380042080000000000000000",
	} {
		b, err := hex.DecodeString(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, r := range seeds {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(sameAsReference)
}

// FuzzGRPCDeclaredShape builds a request from fuzzed parts (a datatype,
// a shape of any dimensions, raw bytes or a number of typed elements) so
// that the fuzzer reaches every declared-size check without having to
// spell protobuf. Whatever the shape declares, the tensors decoded hold
// what their shapes say, and no more than was sent.
func FuzzGRPCDeclaredShape(f *testing.F) {
	f.Add("FP32", int64(2), int64(2), uint16(4), []byte{}, false)
	f.Add("FP32", int64(2147483648), int64(1), uint16(1), []byte{}, false)
	f.Add("FP32", int64(2147483648), int64(1), uint16(0), []byte{0, 0, 128, 63}, true)
	f.Add("INT64", int64(1<<32), int64(1<<32), uint16(1), []byte{1}, true)
	f.Add("BOOL", int64(-1), int64(1), uint16(1), []byte{1}, false)
	f.Add("BYTES", int64(2147483648), int64(1), uint16(1), []byte{1, 0, 0, 0, 'a'}, true)
	f.Add("BYTES", int64(3), int64(1), uint16(3), []byte{}, false)
	f.Add("UINT16", int64(0), int64(1<<62), uint16(0), []byte{}, true)
	f.Fuzz(func(t *testing.T, dt string, d0, d1 int64, typed uint16, raw []byte, useRaw bool) {
		in := grpcInput("x", dt, d0, d1)
		req := &inferencepb.ModelInferRequest{ModelName: "m", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{in}}
		if useRaw {
			req.RawInputContents = [][]byte{raw}
		} else {
			n := int(typed % 4096)
			c := &inferencepb.InferTensorContents{
				BoolContents: make([]bool, n), IntContents: make([]int32, n), Int64Contents: make([]int64, n),
				UintContents: make([]uint32, n), Uint64Contents: make([]uint64, n), Fp32Contents: make([]float32, n),
				Fp64Contents: make([]float64, n), BytesContents: make([][]byte, n)}
			for i := range c.BytesContents {
				c.BytesContents[i] = raw
			}
			in.Contents = c
		}
		msg, err := proto.Marshal(req)
		if err != nil {
			return // a datatype that is not UTF-8
		}
		sameAsReference(t, msg)
	})
}
