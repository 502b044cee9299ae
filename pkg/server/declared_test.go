package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/heaptest"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// maxGrowth is what refusing one small hostile request may cost the heap,
// client and server together: far below the gigabytes it declares.
const maxGrowth = 8 << 20

// The 75-byte request declaring 2^31 FP32 elements, and its kin, are
// refused with a 400 that names the input, to a model that exists and to
// one that does not, without the heap growing by what they declare.
func TestHTTPDeclaredShapesAreCounted(t *testing.T) {
	_, hs := start(t, nil, Options{})
	const hostile = `{"inputs":[{"name":"x","shape":[2147483648],"datatype":"FP32","data":[1]}]}`
	if len(hostile) != 75 {
		t.Fatalf("the request is %d bytes", len(hostile))
	}
	for _, tc := range []struct {
		name, model, body string
		hl                int64 // -1: all JSON; 0: the header ends at the last '}'
		status            int
		want              string
	}{
		{"declared 2^31 elements", "mlp", hostile, -1, 400, `input "x": shape [2147483648] declares 2147483648 elements, data holds 1`},
		// Routed before its body is read: refused with 404, nothing decoded.
		{"no such model", "no-such-model", hostile, -1, 404, `model not found: "no-such-model"`},
		{"nested", "mlp", `{"inputs":[{"name":"image","shape":[1048576,2048],"datatype":"FP32","data":[[1,2]]}]}`, -1, 400,
			`input "image": shape [1048576 2048] declares 2147483648 elements, data holds 2`},
		{"strings", "text-encoder", `{"inputs":[{"name":"text","shape":[2147483648],"datatype":"BYTES","data":["hi"]}]}`, -1, 400,
			`input "text": shape [2147483648] declares 2147483648 elements, data holds 1`},
		{"overflowing product", "mlp", `{"inputs":[{"name":"image","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}`, -1, 400,
			`input "image": invalid shape [4294967296 4294967296]: the product of its dimensions overflows int64`},
		{"negative dimension", "mlp", `{"inputs":[{"name":"image","shape":[1,-784],"datatype":"FP32","data":[1]}]}`, -1, 400,
			`input "image": invalid shape [1 -784]: dimension 1 is -784`},
		{"binary declared 2^31", "mlp", `{"inputs":[{"name":"image","shape":[2147483648],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXX`, 0, 400,
			`input "image": shape [2147483648] of FP32 declares 2147483648 elements and needs 8589934592 bytes, binary_data_size is 4`},
		{"binary_data_size past the body", "mlp", `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":3136}}]}XXXX`, 0, 400,
			`input "image": binary_data_size is 3136 but only 4 binary bytes remain`},
		{"binary sizes summing past the body", "multi-io", `{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}},{"name":"b","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}XXXXYY`, 0, 400,
			`input "b": binary_data_size is 4 but only 2 binary bytes remain`},
		{"negative binary_data_size", "mlp", `{"inputs":[{"name":"image","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}XXXX`, 0, 400,
			`parameter "binary_data_size": -4 is not a non-negative integer`},
		{"header length past the body", "mlp", hostile, 1 << 40, 400,
			`Inference-Header-Content-Length is 1099511627776 but the body has 75 bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.hl == 0 {
				tc.hl = int64(strings.LastIndex(tc.body, "}") + 1)
			}
			if tc.hl > 0 {
				h[protocol.HeaderContentLength] = strconv.FormatInt(tc.hl, 10)
			}
			var r reply
			grew := heaptest.Allocated(func() { r = call(t, "POST", hs.URL+"/v2/models/"+tc.model+"/infer", []byte(tc.body), h) })
			var e protocol.Error
			if r.status != tc.status || json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error, tc.want) {
				t.Errorf("%d %s, want %d mentioning %q", r.status, r.body, tc.status, tc.want)
			}
			if grew > maxGrowth {
				t.Errorf("the heap grew by %d bytes", grew)
			}
		})
	}
}

// The same declarations over gRPC, in typed contents and in
// raw_input_contents, are INVALID_ARGUMENT naming the input.
func TestGRPCDeclaredShapesAreCounted(t *testing.T) {
	_, c, _ := startGRPC(t)
	input := func(name, dt string, shape ...int64) *inferencepb.ModelInferRequest_InferInputTensor {
		return &inferencepb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape}
	}
	typed := func(in *inferencepb.ModelInferRequest_InferInputTensor, contents *inferencepb.InferTensorContents) *inferencepb.ModelInferRequest_InferInputTensor {
		in.Contents = contents
		return in
	}
	for _, tc := range []struct {
		name string
		req  *inferencepb.ModelInferRequest
		want string
	}{
		{"typed 2^31", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			typed(input("x", "FP32", 2147483648), &inferencepb.InferTensorContents{Fp32Contents: []float32{1}})}},
			`input "x": shape [2147483648]: declares 2147483648 elements, contents hold 1`},
		{"typed strings", &inferencepb.ModelInferRequest{ModelName: "text-encoder", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			typed(input("text", "BYTES", 1<<20, 2048), &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("hi")}})}},
			`input "text": shape [1048576 2048]: declares 2147483648 elements, contents hold 1`},
		{"typed without contents", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", "INT64", 2147483648)}},
			`input "x": shape [2147483648]: declares 2147483648 elements, contents hold 0`},
		{"raw 2^31", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", "FP32", 2147483648)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
			`input "x": shape [2147483648] of FP32 declares 2147483648 elements and needs 8589934592 bytes, raw_input_contents[0] holds 4`},
		{"raw strings", &inferencepb.ModelInferRequest{ModelName: "text-encoder", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("text", "BYTES", 2147483648)}, RawInputContents: [][]byte{{2, 0, 0, 0, 'h', 'i'}}},
			`tensor "text": shape [2147483648] declares 2147483648 elements, data holds 1`},
		{"raw string longer than its bytes", &inferencepb.ModelInferRequest{ModelName: "text-encoder", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("text", "BYTES", 1)}, RawInputContents: [][]byte{{255, 255, 255, 127, 'h', 'i'}}},
			`BYTES element 0: length 2147483647 exceeds the 2 bytes left`},
		{"overflowing product", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", "FP32", 1<<32, 1<<32)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
			`input "x": invalid shape [4294967296 4294967296]: the product of its dimensions overflows int64`},
		{"negative dimension", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", "FP32", -1)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
			`input "x": invalid shape [-1]: dimension 0 is -1`},
		{"absurd rank", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", "FP32", make([]int64, 1000)...)}, RawInputContents: [][]byte{{}}},
			`input "x": invalid shape: rank 1000`},
		{"a name of 1 MiB", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input(strings.Repeat("\x01", 1<<20), "FP32", 1)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
			`a name of 1048576 bytes, over the 1024 a name may have`},
		{"a datatype of 1 MiB", &inferencepb.ModelInferRequest{ModelName: "mlp", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			input("x", strings.Repeat("F", 1<<20), 1)}, RawInputContents: [][]byte{{0, 0, 128, 63}}},
			`(1048576 bytes)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			grew := heaptest.Allocated(func() { _, err = c.ModelInfer(context.Background(), tc.req) })
			if code(err) != 3 /* InvalidArgument */ || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 1024 {
				t.Errorf("%.300v, want INVALID_ARGUMENT under 1 KiB mentioning %q", err, tc.want)
			}
			if grew > maxGrowth {
				t.Errorf("the heap grew by %d bytes", grew)
			}
		})
	}
}

// max_tokens near the largest integer must not overflow the context check
// into a channel of that many tokens: the request is a 400 naming it.
func TestHugeMaxTokensIsRefused(t *testing.T) {
	_, url := startGenerators(t)
	for _, tc := range []struct{ path, body string }{
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"hello world","max_tokens":9223372036854775807}`},
		{"/v1/chat/completions", `{"model":"tiny-gpt","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9223372036854775806}`},
		{"/v1/chat/completions", `{"model":"tiny-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":9223372036854775800}`},
		{"/v2/models/tiny-gpt/generate", `{"text_input":"hello world","parameters":{"max_tokens":9e18}}`},
		{"/v2/models/tiny-gpt/generate", `{"text_input":"hello world","max_tokens":9223372036854775807}`},
	} {
		var r reply
		grew := heaptest.Allocated(func() { r = call(t, "POST", url+tc.path, []byte(tc.body), nil) })
		if r.status != 400 || !strings.Contains(string(r.body), "exceed the context") {
			t.Errorf("%s %s: %d %s, want 400 naming the context", tc.path, tc.body, r.status, r.body)
		}
		if grew > maxGrowth {
			t.Errorf("%s %s: the heap grew by %d bytes", tc.path, tc.body, grew)
		}
	}
}

// Texts are padded to the longest of the request before they run, so a
// request of many empty strings and one long one would cost rows x
// max_length x 16 bytes of ids and mask: more texts than the model's
// max_batch_size are refused before any is tokenized.
func TestManyTextsAreRefusedBeforeTokenizing(t *testing.T) {
	_, hs := start(t, nil, Options{})
	const rows = 100000
	long := strings.Repeat("a ", 200)
	data := tensor.AppendUint(nil, uint64(len(long)), 4)
	data = append(data, long...)
	data = append(data, make([]byte, 4*(rows-1))...) // empty strings
	req := &protocol.InferRequest{Inputs: []tensor.Tensor{{Name: "text", DataType: tensor.Bytes, Shape: []int64{rows}, Data: data}}}
	var r reply
	grew := heaptest.Allocated(func() { r, _ = infer(t, hs.URL, "text-encoder", req, true) })
	var e protocol.Error
	if want := `input "text": batch size 100000 exceeds the model's max_batch_size 32`; r.status != 400 || json.Unmarshal(r.body, &e) != nil || !strings.Contains(e.Error, want) {
		t.Errorf("%d %s, want 400 mentioning %q", r.status, r.body, want)
	}
	if limit := uint64(maxGrowth + 8*len(data)); grew > limit {
		t.Errorf("a %d-byte request: the heap grew by %d bytes", len(data), grew)
	}
}

// A model name or version over protocol.MaxNameBytes is INVALID_ARGUMENT
// on every gRPC method, with the name clipped: a 1 MiB name of control
// bytes, percent-encoded in the status, would come back several times
// larger.
func TestGRPCLongModelNamesAreRefused(t *testing.T) {
	_, c, _ := startGRPC(t)
	long := strings.Repeat("\x01", 1<<20)
	ctx := context.Background()
	calls := map[string]func() error{
		"ModelInfer": func() error {
			_, err := c.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: long})
			return err
		},
		"ModelInfer version": func() error {
			_, err := c.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "mlp", ModelVersion: long})
			return err
		},
		"ModelMetadata": func() error {
			_, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: long})
			return err
		},
		"ModelStreamInfer": func() error {
			s, err := c.ModelStreamInfer(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&inferencepb.ModelInferRequest{ModelName: long}); err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "over the 1024 a name may have") || len(err.Error()) > 1024 {
			t.Errorf("%s: %.200v (%d bytes), want INVALID_ARGUMENT under 1 KiB naming the limit", name, err, len(fmt.Sprint(err)))
		}
	}
}

// An error answer stays small whatever a client made long: an unknown
// OpenAI field of 1 MiB, a model name of 100 KiB in the URL. Each is
// refused with a message cut to protocol.MaxMessageBytes.
func TestErrorAnswersStaySmall(t *testing.T) {
	_, url := startGenerators(t)
	long := strings.Repeat("k", 1<<20)
	for _, tc := range []struct{ name, path, body string }{
		{"OpenAI unknown field", "/v1/chat/completions", `{"model":"tiny-gpt","messages":[{"role":"user","content":"hi"}],"` + long + `":1}`},
		{"OpenAI model", "/v1/chat/completions", `{"model":"` + long + `","messages":[{"role":"user","content":"hi"}]}`},
		{"URL model name", "/v2/models/" + strings.Repeat("%01", 100<<10/3) + "/infer", `{"inputs":[]}`},
	} {
		r := call(t, "POST", url+tc.path, []byte(tc.body), nil)
		if r.status < 400 || len(r.body) > 2*protocol.MaxMessageBytes {
			t.Errorf("%s: %d with a %d-byte body, want an error under %d bytes", tc.name, r.status, len(r.body), 2*protocol.MaxMessageBytes)
		}
	}
}
