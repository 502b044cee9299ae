package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/classifiertest"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// A scikit-learn classifier converted with its ZipMap serves, in a model
// host: its labels as INT64, its probabilities (a sequence of maps in the
// model) as BYTES of one JSON object a row, over HTTP JSON, the binary
// extension and gRPC, the same bytes in each; the metadata says what the
// elements hold. A model with an output no tensor carries serves the
// others, and refuses by name a request for it.
func TestNonTensorOutputsOverEveryEncoding(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		"classifier":   {filepath.Join(variants, "classifier.onnx"), ""},
		"sequence-out": {filepath.Join(variants, "sequence-out.onnx"), ""},
	})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	c, _ := serveGRPC(t, s)

	// Metadata, over HTTP with what the BYTES hold, over gRPC as tensors.
	var meta protocol.ModelMetadata
	if r := call(t, "GET", hs.URL+"/v2/models/classifier", nil, nil); r.status != 200 || json.Unmarshal(r.body, &meta) != nil {
		t.Fatalf("classifier metadata: %d %s", r.status, r.body)
	}
	want := []protocol.TensorMetadata{
		{Name: classifiertest.Labels, Datatype: "INT64", Shape: []int64{-1}},
		{Name: classifiertest.Probabilities, Datatype: "BYTES", Shape: []int64{-1},
			Parameters: protocol.Parameters{protocol.ParamContentType: "json", protocol.ParamONNXType: "seq(map(int64,tensor(float)))"}},
	}
	if fmt.Sprint(meta.Outputs) != fmt.Sprint(want) || meta.Parameters != nil {
		t.Errorf("classifier metadata outputs %+v parameters %v, want %+v", meta.Outputs, meta.Parameters, want)
	}
	gm, err := c.ModelMetadata(context.Background(), &inferencepb.ModelMetadataRequest{Name: "classifier"})
	if err != nil || len(gm.Outputs) != 2 || gm.Outputs[1].Datatype != "BYTES" || !slices.Equal(gm.Outputs[1].Shape, []int64{-1}) {
		t.Errorf("classifier metadata over gRPC: %v %v", gm, err)
	}
	meta = protocol.ModelMetadata{}
	if r := call(t, "GET", hs.URL+"/v2/models/sequence-out", nil, nil); r.status != 200 || json.Unmarshal(r.body, &meta) != nil {
		t.Fatalf("sequence-out metadata: %d %s", r.status, r.body)
	}
	if reason, _ := meta.Parameters[protocol.ParamUnservedOutput+"rows"].(string); len(meta.Outputs) != 1 || meta.Outputs[0].Name != "doubled" ||
		!strings.HasPrefix(reason, "seq(tensor(float)): ") {
		t.Errorf("sequence-out metadata: outputs %+v parameters %v", meta.Outputs, meta.Parameters)
	}

	x := classifiertest.Features(3, 5)
	in := []tensor.Tensor{classifiertest.Request(x)}

	// HTTP JSON: each row's map is a JSON string.
	r, resp := infer(t, hs.URL, "classifier", &protocol.InferRequest{Inputs: in}, false)
	if resp == nil {
		t.Fatalf("JSON: %d %s", r.status, r.body)
	}
	if err := classifiertest.Check(x, resp.Outputs); err != nil {
		t.Errorf("JSON: %v\n%s", err, r.body)
	}
	if !bytes.Contains(r.body, []byte(`"name":"output_probability","shape":[5],"datatype":"BYTES","data":["{\"0\":`)) {
		t.Errorf("JSON body: %s", r.body)
	}
	fromJSON := resp.Outputs[1].Data

	// The binary extension: the BYTES tensor's own bytes.
	r, resp = infer(t, hs.URL, "classifier", &protocol.InferRequest{Inputs: in, BinaryOutput: true}, true)
	if resp == nil {
		t.Fatalf("binary: %d %s", r.status, r.body)
	}
	if err := classifiertest.Check(x, resp.Outputs); err != nil {
		t.Errorf("binary: %v", err)
	}
	binary := resp.Outputs[1].Data
	if !bytes.Equal(binary, fromJSON) {
		t.Errorf("binary and JSON differ:\n% x\n% x", binary, fromJSON)
	}

	// gRPC, raw and typed inputs: the response's raw contents.
	for _, raw := range []bool{true, false} {
		g, err := c.ModelInfer(context.Background(), requests.GRPC("classifier", in, raw))
		if err != nil || len(g.Outputs) != 2 || len(g.RawOutputContents) != 2 {
			t.Fatalf("gRPC (raw %v): %v %v", raw, g, err)
		}
		outs := make([]tensor.Tensor, 2)
		for i, o := range g.Outputs {
			dt, _ := tensor.ParseDataType(o.Datatype)
			outs[i] = tensor.Tensor{Name: o.Name, DataType: dt, Shape: o.Shape, Data: g.RawOutputContents[i]}
		}
		if err := classifiertest.Check(x, outs); err != nil {
			t.Errorf("gRPC (raw %v): %v", raw, err)
		}
		if !bytes.Equal(outs[1].Data, binary) {
			t.Errorf("gRPC (raw %v) and the binary extension differ:\n% x\n% x", raw, outs[1].Data, binary)
		}
	}

	// The unserved output: left out unasked, refused by name when asked.
	seq := []tensor.Tensor{tensor.New("x", []int64{1, 4}, []float32{1, 2, 3, 4})}
	if r, resp := infer(t, hs.URL, "sequence-out", &protocol.InferRequest{Inputs: seq}, false); resp == nil || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "doubled" {
		t.Errorf("sequence-out: %d %s", r.status, r.body)
	}
	asked := &protocol.InferRequest{Inputs: seq, Outputs: []protocol.RequestedOutput{{Name: "rows"}}}
	if r, _ := infer(t, hs.URL, "sequence-out", asked, false); r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte(`\"rows\"`)) || !bytes.Contains(r.body, []byte("seq(tensor(float))")) {
		t.Errorf("asking for rows over HTTP: %d %s, want 400 naming it and its type", r.status, r.body)
	}
	g := requests.GRPC("sequence-out", seq, true)
	g.Outputs = []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "rows"}}
	if _, err := c.ModelInfer(context.Background(), g); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"rows"`) {
		t.Errorf("asking for rows over gRPC: %v, want InvalidArgument naming it", err)
	}
}

// Requests of 1, 2 and 3 rows that run as one batch of 6 in a model host
// each get their own rows of the classifier's labels and maps.
func TestNonTensorOutputsSplitPerRequest(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		// The batch leaves when full, never on the delay.
		"classifier": {filepath.Join(variants, "classifier.onnx"), "max_batch_size: 6\ndynamic_batching: {max_queue_delay: 1h}\n"},
	})
	_, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	var wg sync.WaitGroup
	for rows := 1; rows <= 3; rows++ {
		wg.Go(func() {
			x := classifiertest.Features(7*rows, rows)
			r, resp := infer(t, hs.URL, "classifier", &protocol.InferRequest{Inputs: []tensor.Tensor{classifiertest.Request(x)}, BinaryOutput: rows == 2}, rows == 3)
			if resp == nil {
				t.Errorf("%d rows: %d %s", rows, r.status, r.body)
				return
			}
			if got := r.header.Get(httpapi.BatchSizeHeader); got != "6" {
				t.Errorf("%d rows ran in a batch of %s, want all three requests in one of 6", rows, got)
			}
			if err := classifiertest.Check(x, resp.Outputs); err != nil {
				t.Errorf("%d rows: %v", rows, err)
			}
		})
	}
	wg.Wait()
}
