package grpcapi

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/heaptest"
	"github.com/infer-serving/infer/pkg/tensor"
)

// repeatedField is n copies of field num holding v, as one message's
// bytes.
func repeatedField(num protowire.Number, v []byte, n int) []byte {
	one := protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	return bytes.Repeat(one, n)
}

// bytesInput is an InferInputTensor of n BYTES elements, all empty, in
// typed contents.
func bytesInput(n int) []byte {
	in, _ := proto.Marshal(&inferencepb.ModelInferRequest_InferInputTensor{Name: "s", Datatype: "BYTES", Shape: []int64{int64(n)}})
	contents := repeatedField(8, nil, n)
	return protowire.AppendBytes(protowire.AppendTag(in, 5, protowire.BytesType), contents)
}

// A message's repeated fields are counted before anything is made for
// their entries: a message of millions of empty entries (2 bytes each on
// the wire, a slice header, a struct or a map entry each to protobuf's
// unmarshalling) is refused, or decoded, with allocations bounded by the
// message, where protobuf's took tens of times its size.
func TestWireDecodeIsBoundedByTheMessage(t *testing.T) {
	const n = 2 << 20
	model := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("m"))
	input, _ := proto.Marshal(&inferencepb.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP32", Shape: []int64{1}})
	param := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("k"))
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"raw_input_contents", append(model, repeatedField(7, nil, n)...), "more than 1024 raw_input_contents"},
		{"inputs", append(model, repeatedField(5, nil, n)...), "more than 1024 inputs"},
		{"outputs", append(model, repeatedField(6, nil, n)...), "more than 1024 outputs"},
		{"parameters", append(model, repeatedField(4, param, n)...), "more than 256 parameters"},
		{"contents met again and again", append(model, repeatedField(5, append(input, repeatedField(5, nil, n)...), 1)...), "inputs[0]: contents met more than 256 times"},
		{"a packed shape", append(model, repeatedField(5, protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), make([]byte, n)), 1)...), "invalid shape: rank 2097152, at most 64 dimensions"},
		{"BYTES of empty elements", append(model, repeatedField(5, bytesInput(n), 1)...), ""},
		{"a long id", append(model, repeatedField(3, bytes.Repeat([]byte("i"), n), 1)...), "id: 2097152 bytes, at most 1024"},
	} {
		var err error
		var inputs []tensor.Tensor
		got := heaptest.Allocated(func() { _, inputs, err = decodeWire(tc.msg) })
		if tc.want == "" {
			if err != nil || len(inputs) != 1 || len(inputs[0].Data) != 4*n {
				t.Fatalf("%s: %v, %d inputs", tc.name, err, len(inputs))
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.name, err, tc.want)
		}
		// What decoding makes is the tensor's bytes (4 a BYTES element
		// here, twice its 2 bytes on the wire) and little else.
		if limit := uint64(2*len(tc.msg) + 1<<20); got > limit {
			t.Errorf("%s: decoding a %d-byte message allocated %d bytes (bound %d)", tc.name, len(tc.msg), got, limit)
		}
		var req inferencepb.ModelInferRequest
		t.Logf("%s: %d-byte message: %d bytes allocated; protobuf's unmarshalling: %d", tc.name, len(tc.msg), got,
			heaptest.Allocated(func() { _ = proto.Unmarshal(tc.msg, &req) }))
	}
}
