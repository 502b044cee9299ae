package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// FuzzDecodeRequest: any body and header length either decodes to tensors
// that validate or fails with ErrBadRequest; nothing panics or hangs. A
// decoder reused across the inputs decodes each as a fresh one does.
func FuzzDecodeRequest(f *testing.F) {
	var reused RequestDecoder
	f.Add([]byte(`{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"outputs":[{"name":"y"}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","\u00e9\n"]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}}]}`+"\x00\x3c"), int64(90))
	f.Add([]byte(`{"inputs":[{"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]}],"parameters":{"binary_data_output":true}}`), int64(-1))
	// Hostile declarations: far more elements than the data, overflowing
	// and negative shapes, binary sizes past the body.
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2147483648],"datatype":"FP32","data":[1]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP64","data":[[1]]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[-1],"datatype":"INT8","data":[1]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2147483648],"datatype":"BYTES","data":["a"]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4000000000}}]}XXXX`), int64(95))
	f.Fuzz(func(t *testing.T, body []byte, hl int64) {
		req, err := DecodeRequest(body, hl)
		again, againErr := reused.Decode(body, hl)
		if (err == nil) != (againErr == nil) || err != nil && err.Error() != againErr.Error() {
			t.Fatalf("a reused decoder failed with %v, a fresh one with %v", againErr, err)
		}
		if err == nil {
			sameRequest(t, "reused decoder", again, req)
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("an error that is not a bad request: %v", err)
			}
			return
		}
		checkDecoded(t, req.Inputs, len(body))
	})
}

// checkDecoded asserts what every decoded tensor owes: it validates, a
// fixed-size type's data is exactly elements x size bytes, and all the
// data together is bounded by the body it came from (a JSON number of
// one digit and a comma becomes at most 8 bytes).
func checkDecoded(t *testing.T, inputs []tensor.Tensor, bodyLen int) {
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
	if total > 8*bodyLen {
		t.Fatalf("%d bytes of tensor data from a %d-byte body", total, bodyLen)
	}
}

// FuzzBinaryRequest builds a request in the binary tensor extension from
// fuzzed parts (the shape, datatype and binary_data_size one input
// declares, the bytes that follow and the Inference-Header-Content-Length)
// so that the fuzzer reaches the binary paths without first having to
// spell valid JSON. Whatever the declaration, the decoder refuses with
// ErrBadRequest or returns tensors that match their shapes, aliasing no
// more bytes than the body holds.
func FuzzBinaryRequest(f *testing.F) {
	f.Add("FP32", []byte{2, 2}, int64(16), make([]byte, 16), int64(0), false)
	f.Add("BYTES", []byte{2}, int64(10), []byte{2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0}, int64(0), false)
	f.Add("FP32", []byte{0x80, 0, 0, 0}, int64(4), []byte{0, 0, 128, 63}, int64(0), false)                // 2^31 elements
	f.Add("FP32", []byte{0xff, 0xff, 0xff, 0x7f, 0xff}, int64(4), []byte{0, 0, 128, 63}, int64(0), false) // overflow
	f.Add("INT64", []byte{1}, int64(1<<40), make([]byte, 8), int64(0), false)                             // size past the body
	f.Add("BYTES", []byte{1}, int64(5), []byte{0xff, 0xff, 0xff, 0x7f, 'a'}, int64(0), false)             // string past its bytes
	f.Add("UINT8", []byte{3}, int64(3), []byte{1, 2, 3, 4}, int64(0), true)                               // trailing bytes
	f.Add("FP16", []byte{1}, int64(2), []byte{0, 0x3c}, int64(1<<40), false)                              // header past the body
	f.Fuzz(func(t *testing.T, datatype string, dims []byte, size int64, bin []byte, hlDelta int64, twice bool) {
		// Each group of bytes up to a 0xff is one dimension, little-endian,
		// so a few bytes reach dimensions of any size; a 0xff byte alone
		// makes the dimension negative.
		shape := []int64{}
		var d int64
		var shift uint
		for _, b := range dims {
			if b == 0xff {
				if shift == 0 {
					d = -1
				}
				shape, d, shift = append(shape, d), 0, 0
				continue
			}
			if shift < 64 {
				d |= int64(b) << shift
			}
			shift += 8
		}
		if shift > 0 {
			shape = append(shape, d)
		}
		in := map[string]any{"name": "x", "shape": shape, "datatype": datatype, "parameters": map[string]any{ParamBinaryDataSize: size}}
		inputs := []any{in}
		if twice {
			inputs = append(inputs, map[string]any{"name": "y", "shape": shape, "datatype": datatype, "parameters": map[string]any{ParamBinaryDataSize: size}})
		}
		header, err := json.Marshal(map[string]any{"inputs": inputs})
		if err != nil {
			return
		}
		body := append(header, bin...)
		hl := int64(len(header))
		if hlDelta != 0 {
			hl += hlDelta
		}
		req, err := DecodeRequest(body, hl)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("an error that is not a bad request: %v", err)
			}
			return
		}
		checkDecoded(t, req.Inputs, len(body))
		aliased := 0
		for _, in := range req.Inputs {
			aliased += len(in.Data)
		}
		if hlDelta == 0 && aliased != len(bin) {
			t.Fatalf("the inputs hold %d binary bytes, the body %d", aliased, len(bin))
		}
	})
}

// FuzzJSONData: the data scanner never panics, and what it accepts it
// counts consistently with what it wrote.
func FuzzJSONData(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1],[2]]`, `7`, `[]`, `["a","b\"c"]`, `[true,false]`, `[1e39]`, `[ [ 1 , 2 ] ]`} {
		f.Add([]byte(s), uint8(12))
	}
	f.Fuzz(func(t *testing.T, raw []byte, dtByte uint8) {
		dt := 1 + dtByte%14 // Bool .. Bytes
		data, n, err := appendJSONData(nil, raw, tensorType(dt))
		if err != nil {
			return
		}
		if size := tensorType(dt).Size(); size > 0 && int64(len(data)) != n*int64(size) {
			t.Fatalf("%d elements but %d bytes of %s", n, len(data), tensorType(dt))
		}
	})
}

func tensorType(b uint8) tensor.DataType { return tensor.DataType(b) }

// referenceDecode decodes a request the way encoding/json and the data
// parser alone do it, three passes over the data: the single-pass
// decoder must agree with it.
func referenceDecode(body []byte, hl int64) ([]tensor.Tensor, error) {
	header, bin, err := split(body, hl)
	if err != nil {
		return nil, err
	}
	var w wireRequest
	if err := json.Unmarshal(header, &w); err != nil {
		return nil, badf("request JSON: %v", err)
	}
	if _, err := w.Parameters.Bool(ParamBinaryDataOutput); err != nil {
		return nil, err
	}
	var out []tensor.Tensor
	for _, in := range w.Inputs {
		t, rest, err := decodeTensor(in, nil, bin, "input")
		if err != nil {
			return nil, err
		}
		bin = rest
		out = append(out, t)
	}
	for _, o := range w.Outputs {
		if _, err := o.Parameters.Bool(ParamBinaryData); err != nil || o.Name == "" {
			return nil, errors.New("bad output")
		}
	}
	return out, nil
}

// FuzzDecodeMatchesEncodingJSON: the single-pass decoder accepts what
// encoding/json and the data parser accept, refuses what they refuse,
// and decodes the same tensors byte for byte.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"outputs":[{"name":"y"}]}`,
		`{"inputs":[{"data":[1,2],"name":"x","datatype":"INT64","shape":[2]}]}`,
		`{"INPUTS":[{"Name":"x","SHAPE":[1],"datatype":"FP64","data":[1e-300]}],"extra":{"a":[1,{"b":null}]}}`,
		`{"inputs":[{"name":"s","shape":[3],"datatype":"BYTES","data":["a","\u00e9\n","\ud83d\ude00"]}]}`,
		`{"inputs":[{"name":"x","shape":[],"datatype":"BOOL","data":true}]}`,
		`{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP16","data":[]}]}`,
		` { "inputs" : [ { "name" : "x" , "shape" : [ 2 ] , "datatype" : "UINT8" , "data" : [ 0 , 255 ] } ] } `,
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}`,
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[+1]}]}`,
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}x`,
		`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["1"]}]}`,
		`{"inputs":[{"name":"x","shape":[1.5],"datatype":"FP32","data":[1]}]}`,
		`{"id":7,"inputs":[]}`,
		"{\"id\":\"\xff\xc3(\",\"inputs\":[{\"name\":\"\xe2\x82x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if ShapeOf(body).Depth > maxDepth {
			return // encoding/json nests to 10,000; the scanner refuses past maxDepth
		}
		if string(bytes.TrimSpace(body)) == "null" {
			return // encoding/json leaves its value as it is; a request must be an object
		}
		want, wantErr := referenceDecode(body, -1)
		got, err := DecodeRequest(body, -1)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s\nsingle pass: %v\nencoding/json: %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		if len(got.Inputs) != len(want) {
			t.Fatalf("%d inputs, encoding/json %d", len(got.Inputs), len(want))
		}
		for i, w := range want {
			g := got.Inputs[i]
			if g.Name != w.Name || g.DataType != w.DataType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) || !bytes.Equal(g.Data, w.Data) {
				t.Fatalf("input %d: %s %v % x, encoding/json %s %v % x", i, g.DataType, g.Shape, g.Data, w.DataType, w.Shape, w.Data)
			}
		}
	})
}
