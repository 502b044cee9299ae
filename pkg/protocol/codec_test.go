package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// everyType returns one tensor of each datatype, with awkward values.
func everyType() []tensor.Tensor {
	bytesData := binary.LittleEndian.AppendUint32(nil, 5)
	bytesData = append(bytesData, "hé\"\n"...)
	bytesData = binary.LittleEndian.AppendUint32(bytesData, 0)
	return []tensor.Tensor{
		tensor.NewBool("bool", []int64{1, 3}, []bool{true, false, true}),
		tensor.New("uint8", []int64{2}, []uint8{0, 255}),
		tensor.New("uint16", []int64{2}, []uint16{0, math.MaxUint16}),
		tensor.New("uint32", []int64{2}, []uint32{7, math.MaxUint32}),
		tensor.New("uint64", []int64{2}, []uint64{0, math.MaxUint64}),
		tensor.New("int8", []int64{2}, []int8{math.MinInt8, math.MaxInt8}),
		tensor.New("int16", []int64{2}, []int16{math.MinInt16, 3}),
		tensor.New("int32", []int64{2}, []int32{math.MinInt32, math.MaxInt32}),
		tensor.New("int64", []int64{2, 1}, []int64{math.MinInt64, math.MaxInt64}),
		tensor.NewFP16("fp16", []int64{3}, []float32{1.5, -0.25, 65504}),
		{Name: "bf16", DataType: tensor.BF16, Shape: []int64{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}}, // 1.0, -2.0
		tensor.New("fp32", []int64{2, 2}, []float32{0.1, -3.4e38, 1e-45, 7}),
		tensor.New("fp64", []int64{2}, []float64{math.Pi, -1e-300}),
		{Name: "bytes", DataType: tensor.Bytes, Shape: []int64{2}, Data: bytesData},
	}
}

func TestRequestRoundTripEveryDatatype(t *testing.T) {
	for _, bin := range []bool{false, true} {
		t.Run(fmt.Sprintf("binary=%v", bin), func(t *testing.T) {
			req := &InferRequest{ID: "r1", Inputs: everyType(), Outputs: []RequestedOutput{{Name: "y", Binary: true}}}
			body, hl, err := req.Encode(bin)
			if err != nil {
				t.Fatal(err)
			}
			if bin != (hl >= 0) {
				t.Fatalf("header length %d for binary=%v", hl, bin)
			}
			got, err := DecodeRequest(body, hl)
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if got.ID != "r1" || len(got.Outputs) != 1 || !got.Outputs[0].Binary {
				t.Fatalf("request fields %+v", got)
			}
			for i, want := range req.Inputs {
				g := got.Inputs[i]
				if g.Name != want.Name || g.DataType != want.DataType || fmt.Sprint(g.Shape) != fmt.Sprint(want.Shape) || !bytes.Equal(g.Data, want.Data) {
					t.Errorf("%s: got %s %v % x, want %s %v % x", want.Name, g.DataType, g.Shape, g.Data, want.DataType, want.Shape, want.Data)
				}
			}
		})
	}
}

func TestResponseRoundTripMixedBinary(t *testing.T) {
	outs := everyType()
	binaryFlags := make([]bool, len(outs))
	for i := range binaryFlags {
		binaryFlags[i] = i%2 == 0
	}
	resp := &InferResponse{ModelName: "m", ModelVersion: "3", ID: "x", Outputs: outs, Binary: binaryFlags}
	body, hl, err := resp.Encode()
	if err != nil || hl < 0 {
		t.Fatalf("encode: %v, header length %d", err, hl)
	}
	got, err := DecodeResponse(body, hl)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if got.ModelName != "m" || got.ModelVersion != "3" || got.ID != "x" {
		t.Fatalf("%+v", got)
	}
	for i := range outs {
		if !bytes.Equal(got.Outputs[i].Data, outs[i].Data) {
			t.Errorf("%s: % x, want % x", outs[i].Name, got.Outputs[i].Data, outs[i].Data)
		}
	}
}

// The request example of the specification: flat and nested data.
func TestSpecificationExample(t *testing.T) {
	body := []byte(`{
	  "id" : "42",
	  "inputs" : [
	    {"name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32", "data" : [ 1, 2, 3, 4 ]},
	    {"name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ true ]}
	  ],
	  "outputs" : [ {"name" : "output0"} ]
	}`)
	_, err := DecodeRequest(body, -1)
	if err == nil || !strings.Contains(err.Error(), `input "input1": shape [3] declares 3 elements, data holds 1`) {
		t.Fatalf("err %v: the example's input1 is one element short and must be named", err)
	}
	body = bytes.Replace(body, []byte(`[ true ]`), []byte(`[ true, false, true ]`), 1)
	body = bytes.Replace(body, []byte(`[ 1, 2, 3, 4 ]`), []byte(`[ [1, 2], [3, 4] ]`), 1)
	req, err := DecodeRequest(body, -1)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := tensor.Values[uint32](req.Inputs[0])
	if req.ID != "42" || fmt.Sprint(v) != "[1 2 3 4]" || !bytes.Equal(req.Inputs[1].Data, []byte{1, 0, 1}) || req.Outputs[0].Name != "output0" {
		t.Fatalf("decoded %+v", req)
	}
}

// The binary example of the extension's specification: a JSON header
// followed by 16 bytes of FP32 data.
func TestBinaryExtensionExample(t *testing.T) {
	header := `{"model_name":"mymodel","inputs":[{"name":"input0","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}],"outputs":[{"name":"output0","parameters":{"binary_data":true}},{"name":"output1"}]}`
	data := tensor.New("input0", []int64{2, 2}, []float32{1, 2, 3, 4}).Data
	hl, err := ParseHeaderLength(fmt.Sprint(len(header)))
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequest(append([]byte(header), data...), hl)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req.Inputs[0].Data, data) || !req.Outputs[0].Binary || req.Outputs[1].Binary {
		t.Fatalf("%+v", req)
	}
}

func TestDecodeErrorsNameTheProblem(t *testing.T) {
	for _, tc := range []struct {
		body string
		hl   int64
		want string
	}{
		{`{`, -1, "request JSON"},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FLOAT","data":[1,2]}]}`, -1, `input "x": unknown datatype "FLOAT"`},
		{`{"inputs":[{"name":"x","shape":[-2],"datatype":"FP32","data":[1,2]}]}`, -1, `input "x": invalid shape`},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32"}]}`, -1, `input "x": no data`},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[1,300]}]}`, -1, `"300" is not a valid INT8`},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP16","data":[65504,70000]}]}`, -1, `"70000" is not a valid FP16: value out of range: beyond FP16's largest magnitude, 65504`}, // it became infinity
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}`, -1, `"1e39" is not a valid FP32`},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,"a"]}]}`, -1, `input "x": data: element 1`},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[[1,2]}]}`, -1, "request JSON"},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,,2]}]}`, -1, "request JSON"},
		{"{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,\x002]}]}", -1, `invalid value "\x002"`},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}`, -1, `"1" is not a valid BOOL`},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`, 1000, "body has"},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":8}}]}XXXX`, 0, "only 4 binary bytes remain"},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXXYYYY`, 0, "4 bytes of binary data follow"},
		{`{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXX`, 0, "needs 8 bytes"},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}`, -1, "not a non-negative integer"},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":9223372036854775807}}]}`, -1, "over 2^53"},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}}]}`, -1, `parameter "binary_data_size": the string "4", want a JSON number`},
		{`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"binary_data_output":"yes"}}`, -1, "not a boolean"},
		{`{"id":"` + strings.Repeat("\\u00e9", 200) + `","inputs":[]}`, -1, "id: 1200 bytes, at most 1024"}, // counted as written
	} {
		if tc.hl == 0 { // the JSON header ends at the last '}'
			tc.hl = int64(strings.LastIndex(tc.body, "}") + 1)
		}
		_, err := DecodeRequest([]byte(tc.body), tc.hl)
		if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want a bad request mentioning %q", tc.body, err, tc.want)
		}
	}
}

// An id of MaxRequestIDBytes is taken as it is.
func TestLongestIDIsTaken(t *testing.T) {
	id := strings.Repeat("i", MaxRequestIDBytes)
	req, err := DecodeRequest([]byte(`{"id":"`+id+`","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`), -1)
	if err != nil || req.ID != id {
		t.Fatalf("an id of %d bytes: %v", len(id), err)
	}
}

func TestNonFiniteFloatsBecomeNull(t *testing.T) {
	out := tensor.New("y", []int64{3}, []float32{1, float32(math.NaN()), float32(math.Inf(-1))})
	body, _, err := (&InferResponse{ModelName: "m", Outputs: []tensor.Tensor{out}}).Encode()
	if err != nil || !bytes.Contains(body, []byte(`"data":[1,null,null]`)) {
		t.Fatalf("%v %s", err, body)
	}
}

// A message quotes at most clipBytes of a client's token or string and
// refuses a name over MaxNameBytes, so that a large body cannot make a
// larger answer: a 1 MiB malformed number, datatype or name gets a
// message of a few hundred bytes that still says what was wrong.
func TestMessagesClipWhatTheClientSent(t *testing.T) {
	huge := strings.Repeat("\x01", 1<<20)
	for _, tc := range []struct{ name, body, want string }{
		{"token", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1` + huge + `]}]}`, "invalid value"},
		{"datatype", `{"inputs":[{"name":"x","shape":[1],"datatype":"` + strings.Repeat("F", 1<<20) + `","data":[1]}]}`, "unknown datatype"},
		{"name", `{"inputs":[{"name":"` + strings.Repeat("x", 1<<20) + `","shape":[1],"datatype":"FP32","data":[1]}]}`, "over the 1024 a name may have"},
		{"output name", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"` + strings.Repeat("y", 1<<20) + `"}]}`, "over the 1024"},
		{"parameter", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"binary_data_output":"` + strings.Repeat("t", 1<<20) + `"}}`, "the string"},
	} {
		_, err := DecodeRequest([]byte(tc.body), -1)
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 512 {
			t.Errorf("%s: %d-byte message %.200q, want one under 512 bytes containing %q", tc.name, len(fmt.Sprint(err)), fmt.Sprint(err), tc.want)
		}
	}
}
