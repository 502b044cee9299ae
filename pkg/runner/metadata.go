package runner

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/tensor"
)

// TensorSpec describes one model input or output as read from the graph.
type TensorSpec struct {
	Name     string
	DataType tensor.DataType
	// Shape holds -1 for every dynamic dimension.
	Shape []int64
}

// Metadata describes a loaded model version.
type Metadata struct {
	Name     string
	Version  int64
	Platform string // always "onnxruntime_onnx", as Triton names it
	Inputs   []TensorSpec
	Outputs  []TensorSpec
}

// Platform is the platform name Triton reports for ONNX models.
const Platform = "onnxruntime_onnx"

var ortTypes = map[ort.TensorElementDataType]tensor.DataType{
	ort.TensorElementDataTypeBool:     tensor.Bool,
	ort.TensorElementDataTypeUint8:    tensor.Uint8,
	ort.TensorElementDataTypeUint16:   tensor.Uint16,
	ort.TensorElementDataTypeUint32:   tensor.Uint32,
	ort.TensorElementDataTypeUint64:   tensor.Uint64,
	ort.TensorElementDataTypeInt8:     tensor.Int8,
	ort.TensorElementDataTypeInt16:    tensor.Int16,
	ort.TensorElementDataTypeInt32:    tensor.Int32,
	ort.TensorElementDataTypeInt64:    tensor.Int64,
	ort.TensorElementDataTypeFloat16:  tensor.FP16,
	ort.TensorElementDataTypeBFloat16: tensor.BF16,
	ort.TensorElementDataTypeFloat:    tensor.FP32,
	ort.TensorElementDataTypeDouble:   tensor.FP64,
	ort.TensorElementDataTypeString:   tensor.Bytes,
}

// ortType is the inverse of ortTypes.
func ortType(dt tensor.DataType) ort.TensorElementDataType {
	for k, v := range ortTypes {
		if v == dt {
			return k
		}
	}
	return ort.TensorElementDataTypeUndefined
}

// specsFromGraph converts ONNX Runtime's view of a graph's inputs or
// outputs. Only tensors of the protocol's types are supported.
func specsFromGraph(infos []ort.InputOutputInfo) ([]TensorSpec, error) {
	specs := make([]TensorSpec, len(infos))
	for i, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%q is a %s, only tensors are supported", info.Name, info.OrtValueType)
		}
		dt, ok := ortTypes[info.DataType]
		if !ok {
			return nil, fmt.Errorf("%q has element type %s, which the protocol cannot carry", info.Name, info.DataType)
		}
		if dt == tensor.Bytes {
			return nil, fmt.Errorf("%q is a string tensor; string inputs and outputs are not supported by the runner yet", info.Name)
		}
		shape := make([]int64, len(info.Dimensions))
		for j, d := range info.Dimensions {
			if d < 0 {
				d = -1
			}
			shape[j] = d
		}
		specs[i] = TensorSpec{Name: info.Name, DataType: dt, Shape: shape}
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
