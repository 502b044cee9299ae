package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// reflectEncode is the response as encoding/json writes its wire form:
// the reference AppendTo must match byte for byte.
func reflectEncode(t *testing.T, r *InferResponse) ([]byte, int64) {
	w := wireResponse{ModelName: r.ModelName, ModelVersion: r.ModelVersion, ID: r.ID, Parameters: r.Parameters, Outputs: make([]wireTensor, len(r.Outputs))}
	var bin []byte
	anyBinary := false
	for i, o := range r.Outputs {
		binary := r.Binary != nil && r.Binary[i]
		anyBinary = anyBinary || binary
		wt, err := wireOf(o, binary)
		if err != nil {
			t.Fatal(err)
		}
		w.Outputs[i] = wt
		if binary {
			bin = append(bin, o.Data...)
		}
	}
	header, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if !anyBinary {
		return header, -1
	}
	return append(header, bin...), int64(len(header))
}

// Every datatype, JSON and binary, names and ids that need escapes, and
// parameters: AppendTo writes what encoding/json writes, after whatever
// the buffer already held.
func TestAppendToMatchesEncodingJSON(t *testing.T) {
	names := []string{"mlp", `odd "name" <&> é` + "\n\u2028", "\xff\xfe"}
	for _, name := range names {
		for _, binary := range []bool{false, true} {
			t.Run(fmt.Sprintf("%q/binary=%v", name, binary), func(t *testing.T) {
				outs := everyType()
				outs = append(outs, tensor.Tensor{Name: name, DataType: tensor.FP32, Shape: nil, Data: tensor.New("", nil, []float32{2.5}).Data},
					tensor.New("empty", []int64{0, 4}, []float32{}))
				r := &InferResponse{ModelName: name, ModelVersion: "7", ID: name, Outputs: outs, Parameters: Parameters{"sequence_end": true, "note": name}}
				if binary {
					r.Binary = make([]bool, len(outs))
					for i := range r.Binary {
						r.Binary[i] = i%2 == 0
					}
				}
				want, wantHeader := reflectEncode(t, r)
				got, header, err := r.AppendTo([]byte("prefix"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[len("prefix"):], want) || header != wantHeader {
					t.Errorf("AppendTo:\n%q (header %d)\nencoding/json:\n%q (header %d)", got[len("prefix"):], header, want, wantHeader)
				}
			})
		}
	}
	bare := &InferResponse{ModelName: "m", Outputs: []tensor.Tensor{}}
	want, _ := reflectEncode(t, bare)
	if got, _, _ := bare.AppendTo(nil); !bytes.Equal(got, want) {
		t.Errorf("no outputs: %s, want %s", got, want)
	}
}
