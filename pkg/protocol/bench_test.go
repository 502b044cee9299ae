package protocol

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// mlpRequest is the request the serving benchmarks send: one row of 784
// FP32 values in [0, 1), as a float32's shortest decimal spelling.
func mlpRequest() *InferRequest {
	rng := rand.New(rand.NewPCG(1, 2))
	row := make([]float32, 784)
	for i := range row {
		row[i] = rng.Float32()
	}
	return &InferRequest{ID: "1", Inputs: []tensor.Tensor{tensor.New("x", []int64{1, 784}, row)}}
}

// mlpResponse is the answer to mlpRequest: ten FP32 scores.
func mlpResponse(binary bool) *InferResponse {
	scores := make([]float32, 10)
	for i := range scores {
		scores[i] = float32(i) * 0.731
	}
	r := &InferResponse{ModelName: "mlp", ModelVersion: "1", ID: "1", Outputs: []tensor.Tensor{tensor.New("y", []int64{1, 10}, scores)}}
	if binary {
		r.Binary = []bool{true}
	}
	return r
}

func benchmarkDecode(b *testing.B, binary bool) {
	body, hl, err := mlpRequest().Encode(binary)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(body, hl); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequest decodes mlp's one-row request: 784 FP32 values,
// about 8 KiB of JSON or 3 KiB in the binary extension. json-6 is the
// JSON body scripts/bench-serve.sh sends: six decimals a value.
func BenchmarkDecodeRequest(b *testing.B) {
	b.Run("json", func(b *testing.B) { benchmarkDecode(b, false) })
	b.Run("binary", func(b *testing.B) { benchmarkDecode(b, true) })
	b.Run("binary-wrk", func(b *testing.B) {
		// The header scripts/bench-serve.sh sends, parameters and all.
		header := `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":3136}}],"parameters":{"binary_data_output":true}}`
		body := append([]byte(header), make([]byte, 3136)...)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRequest(body, int64(len(header))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json-6", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		body := []byte(`{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[`)
		for i := range 784 {
			if i > 0 {
				body = append(body, ',')
			}
			body = strconv.AppendFloat(body, rng.Float64(), 'f', 6, 64)
		}
		body = append(body, "]}]}"...)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRequest(body, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeResponse encodes mlp's answer, ten FP32 scores.
func BenchmarkEncodeResponse(b *testing.B) {
	for _, binary := range []bool{false, true} {
		name := map[bool]string{false: "json", true: "binary"}[binary]
		b.Run(name, func(b *testing.B) {
			r := mlpResponse(binary)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
