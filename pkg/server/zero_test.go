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
