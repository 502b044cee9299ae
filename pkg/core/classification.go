package core

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Triton's classification extension (server docs,
// protocol/extension_classification.md; src/classification.cc): a
// requested output with the parameter "classification": n is answered
// with its n highest-valued elements instead of its tensor, as a BYTES
// tensor of "<value>:<index>[:<label>]" strings, best first.
//
//   - A model that batches (max_batch_size above 0, or a pipeline or
//     router whose output has a variable first dimension and more than
//     one) is classified row by row: shape [rows, min(n, elements per
//     row)], each index counted within its row's elements (flattened).
//     Any other output is classified as a whole: shape [min(n,
//     elements)].
//   - Values are compared in the output's own datatype (UINT8 to UINT64,
//     INT8 to INT64, FP32, FP64; the rest have no order Triton defines
//     and are refused) and written as C's to_string writes them: integers
//     in decimal, floats with six decimals ("0.731059"), so that clients
//     parsing Triton's answers parse ours. Equal values keep index order.
//   - The label is line index+1 of the output's labels file (config.yaml
//     labels), when it has one and the line exists.

// checkClasses refuses, before the call runs, a classification asked of
// an output m does not have or whose datatype has no order.
func checkClasses(m *runner.Model, classes map[string]int64) error {
	if len(classes) == 0 {
		return nil
	}
	outs := m.Metadata().Outputs
	for name := range classes {
		i := slices.IndexFunc(outs, func(s runner.TensorSpec) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("%w: output %q: classification asked of an output model %q does not have", runner.ErrInvalidInput, name, m.Metadata().Name)
		}
		if !classifiable(outs[i].DataType) {
			return fmt.Errorf("%w: output %q: classification is not available for its datatype %s (want an integer type, FP32 or FP64)", runner.ErrInvalidInput, name, outs[i].DataType)
		}
	}
	return nil
}

func classifiable(dt tensor.DataType) bool {
	switch dt {
	case tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64,
		tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64, tensor.FP32, tensor.FP64:
		return true
	}
	return false
}

// classify returns outs with each output that classes names replaced by
// its top classes; outs itself is not changed.
func classify(m *runner.Model, outs []tensor.Tensor, classes map[string]int64) ([]tensor.Tensor, error) {
	res := slices.Clone(outs)
	for i, t := range res {
		n, ok := classes[t.Name]
		if !ok || n <= 0 {
			continue
		}
		c, err := topClasses(t, n, batched(m, t), m.Labels(t.Name))
		if err != nil {
			return nil, fmt.Errorf("output %q: classification: %w", t.Name, err)
		}
		res[i] = c
	}
	return res, nil
}

// batched reports whether t's first dimension counts rows to classify
// one by one.
func batched(m *runner.Model, t tensor.Tensor) bool {
	if len(t.Shape) == 0 {
		return false
	}
	if m.Composite() != nil {
		i := slices.IndexFunc(m.Metadata().Outputs, func(s runner.TensorSpec) bool { return s.Name == t.Name })
		return i >= 0 && len(t.Shape) > 1 && m.Metadata().Outputs[i].Shape[0] < 0
	}
	mb := m.Config().MaxBatchSize
	return mb != nil && *mb > 0
}

// topClasses is t's top n classes, per row when batched.
func topClasses(t tensor.Tensor, n int64, batched bool, labels []string) (tensor.Tensor, error) {
	switch t.DataType {
	case tensor.Uint8:
		return rank[uint8](t, n, batched, labels)
	case tensor.Uint16:
		return rank[uint16](t, n, batched, labels)
	case tensor.Uint32:
		return rank[uint32](t, n, batched, labels)
	case tensor.Uint64:
		return rank[uint64](t, n, batched, labels)
	case tensor.Int8:
		return rank[int8](t, n, batched, labels)
	case tensor.Int16:
		return rank[int16](t, n, batched, labels)
	case tensor.Int32:
		return rank[int32](t, n, batched, labels)
	case tensor.Int64:
		return rank[int64](t, n, batched, labels)
	case tensor.FP32:
		return rank[float32](t, n, batched, labels)
	case tensor.FP64:
		return rank[float64](t, n, batched, labels)
	}
	return tensor.Tensor{}, fmt.Errorf("%w: datatype %s has no order", runner.ErrInvalidInput, t.DataType)
}

// rank is topClasses for element type T.
func rank[T tensor.Number](t tensor.Tensor, n int64, batched bool, labels []string) (tensor.Tensor, error) {
	v, err := tensor.Values[T](t)
	if err != nil {
		return tensor.Tensor{}, err
	}
	rows := 1
	if batched {
		rows = int(t.Shape[0])
	}
	per := 0
	if rows > 0 {
		per = len(v) / rows
	}
	k := int(min(n, int64(per)))
	order := make([]int, per)
	var data []byte
	for r := range rows {
		row := v[r*per : (r+1)*per]
		for _, i := range tensor.TopK(row, k, order) {
			start := len(data)
			data = append(data, 0, 0, 0, 0)
			data = appendValue(data, row[i])
			data = append(data, ':')
			data = strconv.AppendInt(data, int64(i), 10)
			if i < len(labels) {
				data = append(data, ':')
				data = append(data, labels[i]...)
			}
			binary.LittleEndian.PutUint32(data[start:], uint32(len(data)-start-4))
		}
	}
	shape := []int64{int64(k)}
	if batched {
		shape = []int64{int64(rows), int64(k)}
	}
	return tensor.Tensor{Name: t.Name, DataType: tensor.Bytes, Shape: shape, Data: data}, nil
}

// appendValue writes v as C++'s std::to_string does: integers in
// decimal, floating point with six decimals.
func appendValue[T tensor.Number](dst []byte, v T) []byte {
	switch x := any(v).(type) {
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'f', 6, 64)
	case float64:
		return strconv.AppendFloat(dst, x, 'f', 6, 64)
	case uint8, uint16, uint32, uint64:
		return strconv.AppendUint(dst, uint64(v), 10)
	}
	return strconv.AppendInt(dst, int64(v), 10)
}
