package protocol

import (
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// FuzzDecodeRequest: any body and header length either decodes to tensors
// that validate or fails with ErrBadRequest; nothing panics or hangs.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}],"outputs":[{"name":"y"}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","\u00e9\n"]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}}]}`+"\x00\x3c"), int64(90))
	f.Add([]byte(`{"inputs":[{"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]}],"parameters":{"binary_data_output":true}}`), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, hl int64) {
		req, err := DecodeRequest(body, hl)
		if err != nil {
			return
		}
		for _, in := range req.Inputs {
			if err := in.Validate(); err != nil {
				t.Fatalf("decoded an invalid tensor: %v", err)
			}
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
