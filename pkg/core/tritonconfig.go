package core

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// TritonModelConfig returns m's configuration in effect as Triton's
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
func TritonModelConfig(m *runner.Model) *inferencepb.ModelConfig {
	meta, cfg := m.Metadata(), m.Config()
	mbs := *cfg.MaxBatchSize
	pc := &inferencepb.ModelConfig{
		Name: meta.Name, Platform: meta.Platform, Backend: "onnxruntime", MaxBatchSize: int32(mbs),
		VersionPolicy: tritonVersionPolicy(cfg.VersionPolicy),
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

// tritonVersionPolicy is p as Triton's configuration writes it; unset,
// it is all (infer loads every version folder, where Triton's default
// is the latest one).
func tritonVersionPolicy(p runner.VersionPolicy) *inferencepb.ModelVersionPolicy {
	switch {
	case p.Latest != nil:
		return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Latest_{
			Latest: &inferencepb.ModelVersionPolicy_Latest{NumVersions: uint32(p.Latest.NumVersions)}}}
	case p.Specific != nil:
		return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Specific_{
			Specific: &inferencepb.ModelVersionPolicy_Specific{Versions: p.Specific.Versions}}}
	}
	return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_All_{All: &inferencepb.ModelVersionPolicy_All{}}}
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

// TritonConfigJSON returns pc as Triton's HTTP /config writes it: the
// protobuf's JSON form with the .proto field names, and 64-bit integers
// as JSON numbers rather than protojson's strings (Triton's
// ModelConfigToJson fixes them up the same way, since clients read dims
// as numbers). protojson.Unmarshal reads it back either way.
func TritonConfigJSON(pc *inferencepb.ModelConfig) ([]byte, error) {
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

// modelDataTypes maps protocol datatypes to model_config.proto's enum.
var modelDataTypes = map[tensor.DataType]inferencepb.DataType{
	tensor.Bool: inferencepb.DataType_TYPE_BOOL, tensor.Uint8: inferencepb.DataType_TYPE_UINT8,
	tensor.Uint16: inferencepb.DataType_TYPE_UINT16, tensor.Uint32: inferencepb.DataType_TYPE_UINT32,
	tensor.Uint64: inferencepb.DataType_TYPE_UINT64, tensor.Int8: inferencepb.DataType_TYPE_INT8,
	tensor.Int16: inferencepb.DataType_TYPE_INT16, tensor.Int32: inferencepb.DataType_TYPE_INT32,
	tensor.Int64: inferencepb.DataType_TYPE_INT64, tensor.FP16: inferencepb.DataType_TYPE_FP16,
	tensor.FP32: inferencepb.DataType_TYPE_FP32, tensor.FP64: inferencepb.DataType_TYPE_FP64,
	tensor.Bytes: inferencepb.DataType_TYPE_STRING, tensor.BF16: inferencepb.DataType_TYPE_BF16,
}
