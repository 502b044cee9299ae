package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
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

// A datatype or shape that comes after a tensor's data (a later duplicate
// wins) is what the data is read as: data parsed as the datatype before
// it is parsed again, and refused when it does not fit.
func TestDatatypeAfterDataIsWhatTheDataIsReadAs(t *testing.T) {
	_, err := DecodeRequest([]byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1.5,2.5],"datatype":"INT32"}]}`), -1)
	if err == nil || !strings.Contains(err.Error(), "1.5") {
		t.Errorf("FP32 data read as INT32: %v, want a refusal naming 1.5", err)
	}
	req, err := DecodeRequest([]byte(`{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[-1,2],"datatype":"FP32"}]}`), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tensor.Values[float32](req.Inputs[0]); req.Inputs[0].DataType != tensor.FP32 || !slices.Equal(got, []float32{-1, 2}) {
		t.Errorf("INT32 data then FP32: %s %v, want FP32 [-1 2]", req.Inputs[0].DataType, got)
	}
}

// A request of more inputs or outputs than MaxRequestTensors is refused
// naming the list, before a body of nulls makes the decoder hold
// thousands of times its size.
func TestTooManyTensorsAreRefused(t *testing.T) {
	for _, field := range []string{"inputs", "outputs"} {
		body := `{"` + field + `":[` + strings.Repeat("null,", MaxRequestTensors) + `null]}`
		_, err := DecodeRequest([]byte(body), -1)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), field+": more than 1024 tensors") {
			t.Errorf("%d %s: %v, want a 400 naming %s", MaxRequestTensors+1, field, err, field)
		}
	}
}

// A reset decoder holds nothing of the client's: no body, no values of
// its parameters, no long strings, no list or map past its bounds, only
// memory it reuses.
func TestResetDecoderKeepsNothingOfTheClient(t *testing.T) {
	note := strings.Repeat("i", 1<<20)
	params := make([]string, 20) // 41 objects of 80 values: within MaxParameterValues
	for i := range params {
		params[i] = fmt.Sprintf(`"k%d":[1,2,3]`, i)
	}
	inputs := make([]string, 40)
	for i := range inputs {
		inputs[i] = fmt.Sprintf(`{"name":"x%d","shape":[1],"datatype":"FP32","data":[%d],"parameters":{%s}}`, i, i, strings.Join(params, ","))
	}
	body := `{"inputs":[` + strings.Join(inputs, ",") + `],"parameters":{"note":"` + note + `",` + strings.Join(params, ",") + `}}`
	var d RequestDecoder
	if _, err := d.Decode([]byte(body), -1); err != nil {
		t.Fatal(err)
	}
	d.Reset()
	m := &d.s.mem
	switch {
	case d.s.b != nil:
		t.Error("the body is still referred to")
	case cap(d.r.Inputs) > maxKept || cap(d.req.Inputs) > maxKept:
		t.Errorf("lists of %d and %d inputs kept", cap(d.r.Inputs), cap(d.req.Inputs))
	case len(m.maps) > maxKept:
		t.Errorf("%d parameters maps kept", len(m.maps))
	}
	for _, p := range m.maps {
		if len(p) > 0 {
			t.Errorf("a parameters map still holds %d values", len(p))
			break
		}
	}
	for _, s := range m.strs {
		if len(s) > maxKeptText {
			t.Errorf("a string of %d bytes kept", len(s))
		}
	}
}
