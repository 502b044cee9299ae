package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// softmaxPipeline is a pipeline of one built-in step, for classification
// of a composite's output.
const softmaxPipeline = `
pipeline:
  inputs:
    - {name: scores, datatype: FP32, shape: [-1, -1]}
  outputs: [probs]
  steps:
    - name: soft
      op: softmax
      input_map: {x: scores}
      output_map: {y: probs}
labels: {probs: colours.txt}
`

// classificationRepo serves mlp with labels for its first nine digits
// (the tenth has none), fixed-shape (no batching), multi-io and a
// labelled pipeline.
func classificationRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, m := range []string{"mlp", "fixed-shape", "multi-io"} {
		copyModel(t, filepath.Join(bundled, m), dir)
	}
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "mlp", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write("mlp/config.yaml", string(cfg)+"labels: {probabilities: digits.txt}\n")
	write("mlp/digits.txt", "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n")
	write("soft/config.yaml", softmaxPipeline)
	write("soft/colours.txt", "red\r\ngreen\r\nblue\r\n")
	return dir
}

// wantClasses computes, apart from the server's code, the strings of
// Triton's classification extension for values (rows of per elements).
func wantClasses(values []float32, rows, k int, labels []string) []string {
	var out []string
	per := len(values) / rows
	for r := range rows {
		row := values[r*per : (r+1)*per]
		idx := make([]int, per)
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			if row[a] != row[b] {
				if row[a] > row[b] {
					return -1
				}
				return 1
			}
			return 0
		})
		for _, i := range idx[:min(k, per)] {
			s := fmt.Sprintf("%f:%d", row[i], i)
			if i < len(labels) {
				s += ":" + labels[i]
			}
			out = append(out, s)
		}
	}
	return out
}

// elements returns a BYTES tensor's strings.
func elements(t *testing.T, x tensor.Tensor) []string {
	t.Helper()
	if x.DataType != tensor.Bytes {
		t.Fatalf("output %q is %s, want BYTES", x.Name, x.DataType)
	}
	var out []string
	for d := x.Data; len(d) > 0; {
		n := binary.LittleEndian.Uint32(d)
		out = append(out, string(d[4:4+n]))
		d = d[4+n:]
	}
	return out
}

// classifyHTTP posts inputs to model asking for classes of output over
// the v2 protocol, with its tensors as binary data or JSON.
func classifyHTTP(t *testing.T, url, model, out string, classes int64, binaryData bool, inputs ...tensor.Tensor) (int, *protocol.InferResponse, string) {
	t.Helper()
	req := &protocol.InferRequest{Inputs: inputs, Outputs: []protocol.RequestedOutput{{Name: out, Binary: binaryData, Classes: classes}}}
	body, hl, err := req.Encode(binaryData)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	if binaryData {
		h[protocol.HeaderContentLength] = strconv.FormatInt(hl, 10)
	}
	r := call(t, "POST", url+"/v2/models/"+model+"/infer", body, h)
	if r.status != http.StatusOK {
		return r.status, nil, string(r.body)
	}
	rhl := int64(-1)
	if v := r.header.Get(protocol.HeaderContentLength); v != "" {
		rhl, _ = strconv.ParseInt(v, 10, 64)
	}
	resp, err := protocol.DecodeResponse(r.body, rhl)
	if err != nil {
		t.Fatalf("decode: %v: %s", err, r.body)
	}
	return r.status, resp, ""
}

// An output asked for with the classification parameter comes back as
// its top classes, "value:index[:label]", over HTTP JSON, HTTP binary
// and gRPC, for a batching model (per row), a model that does not batch
// (the whole tensor) and a pipeline; outputs with no order are refused.
func TestClassificationExtension(t *testing.T) {
	repo, err := runner.Open(classificationRepo(t), runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, hs := start(t, repo, Options{Version: "test"})
	grpcClient, _ := serveGRPC(t, s)
	url := hs.URL

	digits := strings.Fields("zero one two three four five six seven eight")
	rows := 3
	img := make([]float32, rows*784)
	for i := range img {
		img[i] = float32((i*7919)%101) / 101
	}
	image := tensor.New("image", []int64{int64(rows), 784}, img)
	plain := classifyAll(t, url, "mlp", image)
	probs, err := tensor.Values[float32](plain["probabilities"])
	if err != nil {
		t.Fatal(err)
	}
	want := wantClasses(probs, rows, 4, digits)

	for _, binaryData := range []bool{false, true} {
		status, resp, msg := classifyHTTP(t, url, "mlp", "probabilities", 4, binaryData, image)
		if status != http.StatusOK {
			t.Fatalf("binary %v: %d %s", binaryData, status, msg)
		}
		got := resp.Outputs[0]
		if !slices.Equal(got.Shape, []int64{3, 4}) || !slices.Equal(elements(t, got), want) {
			t.Errorf("binary %v: %v %q, want [3 4] %q", binaryData, got.Shape, elements(t, got), want)
		}
	}

	// gRPC, as Triton's clients send it: an int64_param on the output.
	g, err := grpcClient.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{
		ModelName: "mlp",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "image", Datatype: "FP32", Shape: image.Shape}},
		RawInputContents: [][]byte{image.Data},
		Outputs: []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "probabilities",
			Parameters: map[string]*inferencepb.InferParameter{"classification": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 4}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := g.GetOutputs()[0]
	gotG := elements(t, tensor.Tensor{Name: out.GetName(), DataType: tensor.Bytes, Data: g.GetRawOutputContents()[0]})
	if out.GetDatatype() != "BYTES" || !slices.Equal(out.GetShape(), []int64{3, 4}) || !slices.Equal(gotG, want) {
		t.Errorf("gRPC: %s %v %q, want BYTES [3 4] %q", out.GetDatatype(), out.GetShape(), gotG, want)
	}

	// A model that does not batch is classified as a whole; a count over
	// the elements gives them all.
	matrix := tensor.New("matrix", []int64{2, 3}, []float32{0.5, -1, 3, 2, 2, 0})
	plain = classifyAll(t, url, "fixed-shape", matrix)
	tr, _ := tensor.Values[float32](plain["transposed"])
	status, resp, msg := classifyHTTP(t, url, "fixed-shape", "transposed", 100, false, matrix)
	if status != http.StatusOK {
		t.Fatalf("fixed-shape: %d %s", status, msg)
	}
	if got, w := elements(t, resp.Outputs[0]), wantClasses(tr, 1, 100, nil); !slices.Equal(resp.Outputs[0].Shape, []int64{6}) || !slices.Equal(got, w) {
		t.Errorf("fixed-shape: %v %q, want [6] %q", resp.Outputs[0].Shape, got, w)
	}

	// A pipeline's output, labelled from its own folder (CRLF lines).
	scores := tensor.New("scores", []int64{2, 3}, []float32{1, 3, 2, 0, 0, 5})
	plain = classifyAll(t, url, "soft", scores)
	p, _ := tensor.Values[float32](plain["probs"])
	status, resp, msg = classifyHTTP(t, url, "soft", "probs", 2, true, scores)
	if status != http.StatusOK {
		t.Fatalf("pipeline: %d %s", status, msg)
	}
	if got, w := elements(t, resp.Outputs[0]), wantClasses(p, 2, 2, []string{"red", "green", "blue"}); !slices.Equal(got, w) || !strings.HasSuffix(got[0], ":1:green") {
		t.Errorf("pipeline: %q, want %q", got, w)
	}

	// Refusals name the output and why.
	ids := tensor.New("ids", []int64{1, 4}, []int64{1, 2, 3, 4})
	flags := tensor.NewBool("flags", []int64{1, 4}, []bool{true, false, true, false})
	halfs := tensor.Tensor{Name: "halfs", DataType: tensor.FP16, Shape: []int64{1, 4}, Data: make([]byte, 8)}
	wide := tensor.New("wide", []int64{1, 4}, []float64{1, 2, 3, 4})
	bytesIn := tensor.New("bytes", []int64{1, 4}, []uint8{1, 2, 3, 4})
	status, _, msg = classifyHTTP(t, url, "multi-io", "flags_negated", 2, false, ids, flags, halfs, wide, bytesIn)
	if status != http.StatusBadRequest || !strings.Contains(msg, "flags_negated") || !strings.Contains(msg, "BOOL") {
		t.Errorf("BOOL output: %d %q, want a 400 naming the output and its datatype", status, msg)
	}
	status, resp, msg = classifyHTTP(t, url, "multi-io", "bytes_inverted", 2, false, ids, flags, halfs, wide, bytesIn)
	if status != http.StatusOK || !slices.Equal(elements(t, resp.Outputs[0]), []string{"254:0", "253:1"}) {
		t.Errorf("UINT8 output: %d %s %v, want 254:0 and 253:1", status, msg, resp)
	}
	body := `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0,", 783) + `0]}],
		"outputs":[{"name":"probabilities","parameters":{"classification":2,"class_count":3}}]}`
	if r := call(t, "POST", url+"/v2/models/mlp/infer", []byte(body), nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "disagree") {
		t.Errorf("two counts: %d %s, want a 400", r.status, r.body)
	}
	body = strings.Replace(body, `"classification":2,"class_count":3`, `"classification":-1`, 1)
	if r := call(t, "POST", url+"/v2/models/mlp/infer", []byte(body), nil); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "classification") {
		t.Errorf("negative count: %d %s, want a 400", r.status, r.body)
	}
	_, err = grpcClient.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{
		ModelName:        "mlp",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "FP32", Shape: image.Shape}},
		RawInputContents: [][]byte{image.Data},
		Outputs: []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "probabilities",
			Parameters: map[string]*inferencepb.InferParameter{"classification": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "4"}}}}},
	})
	if code(err).String() != "InvalidArgument" || !strings.Contains(err.Error(), "classification") {
		t.Errorf("gRPC string count: %v, want InvalidArgument naming the parameter", err)
	}

	// The server says it speaks the extension.
	var meta protocol.ServerMetadata
	if err := json.Unmarshal(call(t, "GET", url+"/v2", nil, nil).body, &meta); err != nil || !slices.Contains(meta.Extensions, "classification") {
		t.Errorf("server metadata %+v (%v): want the classification extension", meta, err)
	}
}

// classifyAll runs inputs on model with no classification and returns
// its outputs by name.
func classifyAll(t *testing.T, url, model string, inputs ...tensor.Tensor) map[string]tensor.Tensor {
	t.Helper()
	body, hl, err := (&protocol.InferRequest{Inputs: inputs, BinaryOutput: true}).Encode(true)
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, "POST", url+"/v2/models/"+model+"/infer", body, map[string]string{protocol.HeaderContentLength: strconv.FormatInt(hl, 10)})
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", model, r.status, r.body)
	}
	rhl, _ := strconv.ParseInt(r.header.Get(protocol.HeaderContentLength), 10, 64)
	resp, err := protocol.DecodeResponse(r.body, rhl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]tensor.Tensor{}
	for _, o := range resp.Outputs {
		out[o.Name] = o
	}
	return out
}
