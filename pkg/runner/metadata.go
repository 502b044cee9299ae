package runner

import (
	"fmt"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/tensor"
)

// TensorSpec describes one model input or output as read from the graph.
type TensorSpec struct {
	Name     string
	DataType tensor.DataType
	// Shape holds -1 for every dynamic dimension.
	Shape []int64
	// Content says what the elements of a BYTES output converted from a
	// value that is not a tensor hold: ContentJSON for a map or a sequence
	// of maps (see UnservedOutput). Empty for a tensor.
	Content string `json:",omitempty"`
	// ONNXType is such an output's type as the ONNX file declares it,
	// "seq(map(int64,tensor(float)))"; empty for a tensor.
	ONNXType string `json:",omitempty"`
}

// Metadata describes a loaded model version.
type Metadata struct {
	Name     string
	Version  int64
	Platform string // always "onnxruntime_onnx", as Triton names it
	Inputs   []TensorSpec
	Outputs  []TensorSpec
	// Unserved are the graph's outputs that no protocol tensor carries,
	// left out of Outputs (see UnservedOutput).
	Unserved []UnservedOutput
}

// Platform is the platform name Triton reports for ONNX models.
const Platform = "onnxruntime_onnx"

// ortTypes maps each protocol datatype to the runtime's element type; the
// zero value (undefined) marks none.
var ortTypes = [...]ort.TensorElementDataType{
	tensor.Bool:   ort.TensorElementDataTypeBool,
	tensor.Uint8:  ort.TensorElementDataTypeUint8,
	tensor.Uint16: ort.TensorElementDataTypeUint16,
	tensor.Uint32: ort.TensorElementDataTypeUint32,
	tensor.Uint64: ort.TensorElementDataTypeUint64,
	tensor.Int8:   ort.TensorElementDataTypeInt8,
	tensor.Int16:  ort.TensorElementDataTypeInt16,
	tensor.Int32:  ort.TensorElementDataTypeInt32,
	tensor.Int64:  ort.TensorElementDataTypeInt64,
	tensor.FP16:   ort.TensorElementDataTypeFloat16,
	tensor.BF16:   ort.TensorElementDataTypeBFloat16,
	tensor.FP32:   ort.TensorElementDataTypeFloat,
	tensor.FP64:   ort.TensorElementDataTypeDouble,
	tensor.Bytes:  ort.TensorElementDataTypeString,
}

// ortType returns the runtime's element type for dt.
func ortType(dt tensor.DataType) ort.TensorElementDataType {
	if int(dt) < len(ortTypes) {
		return ortTypes[dt]
	}
	return ort.TensorElementDataTypeUndefined
}

// protocolType returns the protocol datatype of a runtime element type.
func protocolType(t ort.TensorElementDataType) (tensor.DataType, bool) {
	for dt, o := range ortTypes {
		if o == t && o != ort.TensorElementDataTypeUndefined {
			return tensor.DataType(dt), true
		}
	}
	return tensor.Invalid, false
}

// specsFromPorts converts a graph's inputs or outputs as the ONNX file
// declares them (onnxgraph.ReadInterface). Only tensors of the protocol's
// types are supported.
func specsFromPorts(ports []onnxgraph.Port) ([]TensorSpec, error) {
	specs := make([]TensorSpec, len(ports))
	for i, p := range ports {
		if p.Kind != onnxgraph.KindTensor {
			kind := p.Kind
			if kind == "" {
				kind = "value of no declared type"
			}
			return nil, fmt.Errorf("%q is a %s, only tensors are supported", p.Name, kind)
		}
		dt, ok := protocolType(ort.TensorElementDataType(p.Type))
		if !ok {
			return nil, fmt.Errorf("%q has element type %d, which the protocol cannot carry", p.Name, p.Type)
		}
		if dt == tensor.Bytes {
			return nil, fmt.Errorf("%q is a string tensor; string inputs and outputs are not supported by the runner yet", p.Name)
		}
		specs[i] = TensorSpec{Name: p.Name, DataType: dt, Shape: append([]int64{}, p.Shape...)}
	}
	return specs, nil
}

// batchable reports whether every input and output has a dynamic first
// dimension, so requests can be stacked along it.
func batchable(inputs, outputs []TensorSpec) bool {
	for _, group := range [][]TensorSpec{inputs, outputs} {
		for _, s := range group {
			if len(s.Shape) == 0 || s.Shape[0] != -1 {
				return false
			}
		}
	}
	return true
}
