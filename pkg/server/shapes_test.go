package server

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Shapes at their edges, over HTTP JSON, the binary extension and gRPC
// (raw and typed contents): a scalar (rank 0) in and out, and a batch of
// no rows ([0, 4]).
func TestScalarsAndEmptyBatchesOverEveryEncoding(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		"scalar": {filepath.Join(variants, "scalar.onnx"), ""},
		"faulty": {faultyFile, faultyWarmup},
	})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	c, _ := serveGRPC(t, s)

	// HTTP JSON.
	r := call(t, "POST", hs.URL+"/v2/models/scalar/infer", []byte(`{"inputs":[{"name":"x","shape":[],"datatype":"FP32","data":[3.5]}]}`), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"shape":[],"datatype":"FP32","data":[7]`) {
		t.Errorf("scalar over JSON: %d %s", r.status, r.body)
	}
	r = call(t, "POST", hs.URL+"/v2/models/faulty/infer", []byte(`{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP32","data":[]}]}`), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"shape":[0,4],"datatype":"FP32","data":[]`) {
		t.Errorf("[0,4] over JSON: %d %s", r.status, r.body)
	}

	// The binary extension.
	for _, tc := range []struct {
		model string
		in    tensor.Tensor
		shape []int64
		want  []float32
	}{
		{"scalar", tensor.New("x", []int64{}, []float32{3.5}), []int64{}, []float32{7}},
		{"faulty", tensor.New("x", []int64{0, 4}, []float32{}), []int64{0, 4}, nil},
	} {
		r, resp := infer(t, hs.URL, tc.model, &protocol.InferRequest{Inputs: []tensor.Tensor{tc.in}}, true)
		if r.status != 200 || resp == nil {
			t.Errorf("%s over binary: %d %s", tc.model, r.status, r.body)
			continue
		}
		out := resp.Outputs[0]
		got, _ := tensor.Values[float32](out)
		if !slices.Equal(out.Shape, tc.shape) || len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0] {
			t.Errorf("%s over binary: shape %v values %v, want %v %v", tc.model, out.Shape, got, tc.shape, tc.want)
		}
	}

	// gRPC, raw and typed contents.
	for _, raw := range []bool{true, false} {
		resp, err := c.ModelInfer(context.Background(), requests.GRPC("scalar", []tensor.Tensor{tensor.New("x", []int64{}, []float32{3.5})}, raw))
		if err != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Shape) != 0 {
			t.Errorf("scalar over gRPC (raw %v): %v %v", raw, resp, err)
		}
		resp, err = c.ModelInfer(context.Background(), requests.GRPC("faulty", []tensor.Tensor{tensor.New("x", []int64{0, 4}, []float32{})}, raw))
		if err != nil || len(resp.Outputs) != 1 || !slices.Equal(resp.Outputs[0].Shape, []int64{0, 4}) {
			t.Errorf("[0,4] over gRPC (raw %v): %v %v", raw, resp, err)
		}
	}
}

// Dimensions of size 0 in unbatched models (max_batch_size: 0), whose
// every dimension is the request's own: a [0, 4] input runs in the runtime
// as it is, in a model host and in process, and its [0, 4] output (the
// input stacked on itself) comes back over every encoding.
func TestZeroDimensionsInUnbatchedModels(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		"rows":        {filepath.Join(variants, "repeat-rows.onnx"), "max_batch_size: 0\n"},
		"rows-inproc": {filepath.Join(variants, "repeat-rows.onnx"), "max_batch_size: 0\nisolation: none\n"},
	})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	c, _ := serveGRPC(t, s)
	for _, model := range []string{"rows", "rows-inproc"} {
		r := call(t, "POST", hs.URL+"/v2/models/"+model+"/infer", []byte(`{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP32","data":[]}]}`), nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"shape":[0,4],"datatype":"FP32","data":[]`) {
			t.Errorf("%s, [0,4] over JSON: %d %s", model, r.status, r.body)
		}
		r, resp := infer(t, hs.URL, model, &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("x", []int64{0, 4}, []float32{})}}, true)
		if r.status != 200 || resp == nil || !slices.Equal(resp.Outputs[0].Shape, []int64{0, 4}) || len(resp.Outputs[0].Data) != 0 {
			t.Errorf("%s, [0,4] over binary: %d %s", model, r.status, r.body)
		}
		for _, raw := range []bool{true, false} {
			resp, err := c.ModelInfer(context.Background(), requests.GRPC(model, []tensor.Tensor{tensor.New("x", []int64{0, 4}, []float32{})}, raw))
			if err != nil || len(resp.Outputs) != 1 || !slices.Equal(resp.Outputs[0].Shape, []int64{0, 4}) {
				t.Errorf("%s, [0,4] over gRPC (raw %v): %v %v", model, raw, resp, err)
			}
		}
	}
}
