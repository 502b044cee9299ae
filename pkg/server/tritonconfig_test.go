package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/infer-serving/infer/pkg/inferencepb"
)

// What Triton's clients read: for every bundled model, GET .../config
// parses strictly as model_config.proto's ModelConfig, equals gRPC
// ModelConfig, and declares every tensor the way Triton would accept it
// (never empty dims; the batch dimension left out when batching).
func TestTritonModelConfigAgreesOverHTTPAndGRPC(t *testing.T) {
	s, c, _ := startGRPC(t)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	ctx := context.Background()
	idx, err := c.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.Models) < 6 {
		t.Fatalf("index %v %v", idx, err)
	}
	for _, m := range idx.Models {
		for _, path := range []string{"/v2/models/" + m.Name + "/config", "/v2/models/" + m.Name + "/versions/" + m.Version + "/config"} {
			r := call(t, "GET", hs.URL+path, nil, nil)
			if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET %s: %d %s", path, r.status, r.body)
			}
			var fromHTTP inferencepb.ModelConfig
			if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(r.body, &fromHTTP); err != nil {
				t.Fatalf("GET %s does not parse as Triton's ModelConfig: %v\n%s", path, err, r.body)
			}
			// 64-bit integers are JSON numbers, as Triton writes them.
			if strings.Contains(string(r.body), `"dims":["`) {
				t.Errorf("GET %s: dims as strings: %s", path, r.body)
			}
			fromGRPC, err := c.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: m.Name, Version: m.Version})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&fromHTTP, fromGRPC.Config) {
				t.Fatalf("%s: HTTP and gRPC disagree:\nHTTP %v\ngRPC %v", m.Name, &fromHTTP, fromGRPC.Config)
			}
		}
		cfg, _ := c.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: m.Name})
		pc := cfg.Config
		if pc.Name != m.Name || pc.Platform != "onnxruntime_onnx" || pc.Backend != "onnxruntime" || len(pc.Input) == 0 || len(pc.Output) == 0 {
			t.Errorf("%s: %v", m.Name, pc)
		}
		if pc.GetVersionPolicy().GetAll() == nil { // every version folder loads, where none is set
			t.Errorf("%s: version policy %v, want all", m.Name, pc.GetVersionPolicy())
		}
		meta, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: m.Name})
		if err != nil {
			t.Fatal(err)
		}
		check := func(kind, name string, dims []int64, reshape *inferencepb.ModelTensorReshape, dt inferencepb.DataType, shape []int64) {
			if len(dims) == 0 || dt == inferencepb.DataType_TYPE_INVALID {
				t.Errorf("%s %s %s: dims %v type %v, which Triton refuses", m.Name, kind, name, dims, dt)
			}
			want := shape
			if pc.MaxBatchSize > 0 {
				want = shape[1:]
			}
			got := dims
			if reshape != nil {
				got = reshape.Shape
			}
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("%s %s %s: dims %v reshape %v, want the shape %v less the batch", m.Name, kind, name, dims, reshape, shape)
			}
		}
		for i, in := range pc.Input {
			check("input", in.Name, in.Dims, in.Reshape, in.DataType, meta.Inputs[i].Shape)
		}
		for i, out := range pc.Output {
			check("output", out.Name, out.Dims, out.Reshape, out.DataType, meta.Outputs[i].Shape)
		}
	}
	// A batch of strings: dims [1], reshaped to no dimensions, as in Triton's own configurations.
	cfg, _ := c.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: "text-encoder"})
	if in := cfg.Config.Input[0]; in.DataType != inferencepb.DataType_TYPE_STRING || !slices.Equal(in.Dims, []int64{1}) || in.Reshape == nil || len(in.Reshape.Shape) != 0 {
		t.Fatalf("text-encoder's input %v", in)
	}

	// infer's own configuration has its own endpoint.
	r := call(t, "GET", hs.URL+"/v2/models/mlp/infer-config", nil, nil)
	var own map[string]any
	if err := json.Unmarshal(r.body, &own); err != nil || own["max_batch_size"] != float64(64) || own["name"] != "mlp" || own["dynamic_batching"] == nil {
		t.Fatalf("infer-config %d %s", r.status, r.body)
	}
	if r := call(t, "GET", hs.URL+"/v2/models/nope/config", nil, nil); r.status != 404 {
		t.Fatalf("config of an unknown model: %d %s", r.status, r.body)
	}
}
