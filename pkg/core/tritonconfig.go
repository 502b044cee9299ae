package core

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/runner"
)

// tritonModelConfig returns m's configuration in effect as Triton's
// model_config.proto ModelConfig: the one answer of gRPC ModelConfig and
// of HTTP GET /v2/models/{m}[/versions/{v}]/config, so that tools written
// for Triton (perf_analyzer reads max_batch_size and the inputs' dims from
// it) see the shapes they would see from Triton.
//
// As in Triton, dims leave out the batch dimension when max_batch_size is
// above 0, and are never empty: a tensor with no dimensions besides the
// batch (a batch of strings, shape [-1]) or a scalar is declared dims [1]
// with reshape {shape: []}, which is how Triton's own configurations
// declare them (Triton refuses empty dims).
func tritonModelConfig(m *runner.Model) *inferencepb.ModelConfig {
	meta, cfg := m.Metadata(), m.Config()
	mbs := *cfg.MaxBatchSize
	pc := &inferencepb.ModelConfig{
		Name: meta.Name, Platform: meta.Platform, Backend: "onnxruntime", MaxBatchSize: int32(mbs),
	}
	for _, t := range meta.Inputs {
		dims, reshape := tritonDims(t.Shape, mbs > 0)
		pc.Input = append(pc.Input, &inferencepb.ModelInput{Name: t.Name, DataType: modelDataTypes[t.DataType], Dims: dims, Reshape: reshape})
	}
	for _, t := range meta.Outputs {
		dims, reshape := tritonDims(t.Shape, mbs > 0)
		pc.Output = append(pc.Output, &inferencepb.ModelOutput{Name: t.Name, DataType: modelDataTypes[t.DataType], Dims: dims, Reshape: reshape})
	}
	group := &inferencepb.ModelInstanceGroup{Name: meta.Name, Count: int32(cfg.Instances), Kind: inferencepb.ModelInstanceGroup_KIND_CPU}
	if d := m.Device(); d.Kind != "cpu" {
		group.Kind, group.Gpus = inferencepb.ModelInstanceGroup_KIND_GPU, []int32{int32(d.ID)}
	}
	pc.InstanceGroup = []*inferencepb.ModelInstanceGroup{group}
	if mbs > 0 {
		db := cfg.DynamicBatching
		b := &inferencepb.ModelDynamicBatching{
			MaxQueueDelayMicroseconds: uint64(time.Duration(db.MaxQueueDelay) / time.Microsecond),
			PriorityLevels:            uint64(db.PriorityLevels),
			DefaultPriorityLevel:      uint64(db.DefaultPriority),
			DefaultQueuePolicy: &inferencepb.ModelQueuePolicy{
				DefaultTimeoutMicroseconds: uint64(time.Duration(db.DefaultTimeout) / time.Microsecond),
				AllowTimeoutOverride:       true,
				MaxQueueSize:               uint32(db.MaxQueueSize),
			},
		}
		for _, p := range db.PreferredBatchSizes {
			b.PreferredBatchSize = append(b.PreferredBatchSize, int32(p))
		}
		pc.SchedulingChoice = &inferencepb.ModelConfig_DynamicBatching{DynamicBatching: b}
	}
	return pc
}

// tritonDims returns a tensor's dims as Triton declares them: without the
// batch dimension when batched, and [1] reshaped to [] when nothing is left.
func tritonDims(shape []int64, batched bool) ([]int64, *inferencepb.ModelTensorReshape) {
	if batched && len(shape) > 0 {
		shape = shape[1:]
	}
	if len(shape) == 0 {
		return []int64{1}, &inferencepb.ModelTensorReshape{Shape: []int64{}}
	}
	return shape, nil
}

// tritonConfigJSON returns pc as Triton's HTTP /config writes it: the
// protobuf's JSON form with the .proto field names, and 64-bit integers
// as JSON numbers rather than protojson's strings (Triton's
// ModelConfigToJson fixes them up the same way, since clients read dims
// as numbers). protojson.Unmarshal reads it back either way.
func tritonConfigJSON(pc *inferencepb.ModelConfig) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(pc)
	if err != nil {
		return nil, fmt.Errorf("model config %s: %w", pc.GetName(), err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("model config %s: %w", pc.GetName(), err)
	}
	return json.Marshal(int64sAsNumbers(v, pc.ProtoReflect().Descriptor()))
}

// int64sAsNumbers turns the strings protojson writes for 64-bit integer
// fields of message md back into numbers, recursively.
func int64sAsNumbers(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByName(protoreflect.Name(key))
		if fd == nil {
			continue
		}
		convert := func(x any) any {
			switch {
			case fd.Kind() == protoreflect.MessageKind:
				return int64sAsNumbers(x, fd.Message())
			case is64Bit(fd.Kind()):
				if s, ok := x.(string); ok {
					return json.Number(s)
				}
			}
			return x
		}
		switch {
		case fd.IsMap():
			m, _ := val.(map[string]any)
			vd := fd.MapValue()
			for k, x := range m {
				if vd.Kind() == protoreflect.MessageKind {
					m[k] = int64sAsNumbers(x, vd.Message())
				} else if s, ok := x.(string); ok && is64Bit(vd.Kind()) {
					m[k] = json.Number(s)
				}
			}
		case fd.IsList():
			list, _ := val.([]any)
			for i, x := range list {
				list[i] = convert(x)
			}
		default:
			obj[key] = convert(val)
		}
	}
	return obj
}

func is64Bit(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.Sint64Kind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

// serveModelConfig answers Triton's model configuration, the same as gRPC
// ModelConfig; infer's own configuration is at .../infer-config.
func (s *Server) serveModelConfig(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	body, err := tritonConfigJSON(tritonModelConfig(m))
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// serveInferConfig returns infer's own configuration in effect for a
// model version, defaults applied (the keys of config.yaml, as `infer
// models config` prints them), with the graph's inputs and outputs, as
// JSON.
func (s *Server) serveInferConfig(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(m.Config().Marshal(), &cfg); err != nil {
		s.fail(w, err)
		return
	}
	meta := m.Metadata()
	cfg["name"], cfg["platform"] = meta.Name, meta.Platform
	cfg["input"], cfg["output"] = tensorMetadata(meta.Inputs), tensorMetadata(meta.Outputs)
	writeJSON(w, http.StatusOK, cfg)
}
