package protocol

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// sameRequest fails t unless a decoded request is b, field by field: an
// empty list and a missing one are the same.
func sameRequest(t *testing.T, what string, a, b *InferRequest) {
	t.Helper()
	if a.ID != b.ID || a.BinaryOutput != b.BinaryOutput || len(a.Inputs) != len(b.Inputs) || len(a.Outputs) != len(b.Outputs) ||
		len(a.Parameters) != len(b.Parameters) || len(a.Parameters) > 0 && !reflect.DeepEqual(a.Parameters, b.Parameters) {
		t.Fatalf("%s: decoded %+v, want %+v", what, a, b)
	}
	for i := range a.Inputs {
		x, y := a.Inputs[i], b.Inputs[i]
		if x.Name != y.Name || x.DataType != y.DataType || fmt.Sprint(x.Shape) != fmt.Sprint(y.Shape) || !bytes.Equal(x.Data, y.Data) || (x.Shape == nil) != (y.Shape == nil) {
			t.Fatalf("%s: input %d decoded %+v, want %+v", what, i, x, y)
		}
	}
	for i := range a.Outputs {
		if a.Outputs[i] != b.Outputs[i] {
			t.Fatalf("%s: output %d decoded %+v, want %+v", what, i, a.Outputs[i], b.Outputs[i])
		}
	}
}

// decoderBodies are requests of every kind, one after another as one
// pooled decoder meets them: JSON and binary, with and without
// parameters, outputs and shapes, and malformed ones between.
var decoderBodies = []struct {
	header, bin string // bin: the binary part, after a header of its own length
}{
	{`{"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"outputs":[{"name":"y","parameters":{"classification":2}}],"parameters":{"timeout":1000,"priority":2}}`, ""},
	{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}],"parameters":{"binary_data_output":true}}`, "\x00\x00\x80\x3f"},
	{`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","\u00e9"]},{"name":"n","shape":[],"datatype":"INT64","data":7}]}`, ""},
	{`{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}`, ""}, // refused: the data holds 2 of 3
	{`{"id":"b","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[5,6,7,8]}]}`, ""},
	{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4,"other":{"deep":[1,"two",null]}}}],"outputs":[{"name":"y","parameters":{"binary_data":true}},{"name":"z"}]}`, "\x00\x00\x00\x40"},
	{`{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP32","data":[]}]}`, ""},
	{`{"inputs":[]}`, ""},
	{`{"inputs":[{"name":"x","shape":null,"datatype":"FP32","data":[1]}]}`, ""}, // refused: no shape
	{`{"id":"a","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"outputs":[{"name":"y","parameters":{"classification":2}}],"parameters":{"timeout":1000,"priority":2}}`, ""},
}

// One decoder reused from request to request decodes each as a fresh
// DecodeRequest does, whatever it decoded before, errors included.
func TestRequestDecoderDecodesAsDecodeRequest(t *testing.T) {
	var d RequestDecoder
	for round := range 3 {
		for i, c := range decoderBodies {
			what := fmt.Sprintf("round %d body %d", round, i)
			body, hl := framed(c.header, c.bin)
			want, wantErr := DecodeRequest(body, hl)
			got, err := d.Decode(body, hl)
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("%s: error %v, want %v", what, err, wantErr)
			}
			if err == nil {
				sameRequest(t, what, got, want)
			}
		}
	}
}

// A decoder that has decoded a request decodes another like it with no
// allocation at all, in JSON as in the binary extension: the hot path
// of a front end that pools its decoders.
func TestRequestDecoderAllocatesNothingForALikeRequest(t *testing.T) {
	for _, c := range []struct{ name, header, bin string }{
		{"binary", `{"inputs":[{"name":"image","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}`, string(make([]byte, 16))},
		{"json", `{"id":"7","inputs":[{"name":"image","shape":[1,4],"datatype":"FP32","data":[0.5,0.25,1,2]}],"outputs":[{"name":"p","parameters":{"binary_data":true}}]}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d RequestDecoder
			body, hl := framed(c.header, c.bin)
			if _, err := d.Decode(body, hl); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() {
				if _, err := d.Decode(body, hl); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%v allocations a request, want 0", n)
			}
		})
	}
}

// framed is a body of a JSON header and, when bin is not empty, binary
// data after it, with its Inference-Header-Content-Length (-1: none).
func framed(header, bin string) ([]byte, int64) {
	if bin == "" {
		return []byte(header), -1
	}
	return []byte(header + bin), int64(len(header))
}
