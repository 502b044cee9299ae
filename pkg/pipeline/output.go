package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// noParams is the params of ops that take none.
type noParams struct{}

// softmaxOp turns scores into probabilities along the last dimension.
// Input x: FP32 of any shape (at least one dimension). Output y: FP32 of
// the same shape, each last-dimension row summing to 1.
type softmaxOp struct{}

func newSoftmax(params *yaml.Node, _ env) (op, error) {
	return softmaxOp{}, decodeParams(params, &noParams{})
}

func (softmaxOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 0, tensor.FP32)
	if err == nil && len(s.Shape) == 0 {
		err = errors.New("input \"x\" is a scalar")
	}
	return map[string]runner.TensorSpec{"y": spec("y", tensor.FP32, s.Shape...)}, err
}

func (softmaxOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	v, err := tensor.Values[float32](x)
	if err != nil {
		return nil, err
	}
	c := int(x.Shape[len(x.Shape)-1])
	for row := range slices.Chunk(v, c) {
		softmax(row)
	}
	return map[string]tensor.Tensor{"y": tensor.New("y", x.Shape, v)}, nil
}

// softmax replaces row by its softmax, shifted by its maximum so that no
// exponential overflows.
func softmax(row []float32) {
	peak := slices.Max(row)
	var sum float64
	for i, v := range row {
		e := math.Exp(float64(v - peak))
		row[i] = float32(e)
		sum += e
	}
	for i := range row {
		row[i] = float32(float64(row[i]) / sum)
	}
}

// topKOp keeps each row's K best scores. Input x: FP32 [n, classes].
// Outputs scores: FP32 [n, K] (descending), indices: INT64 [n, K] (class
// numbers from 0), and with a Labels file labels: BYTES [n, K] (line
// index+1 of the file).
type topKOp struct {
	K      int    `yaml:"k"`      // 1 when unset
	Labels string `yaml:"labels"` // a file of the pipeline's folder, one label a line
	labels []string
}

func newTopK(params *yaml.Node, e env) (op, error) {
	o := &topKOp{K: 1}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	if o.K < 1 {
		return nil, fmt.Errorf("k %d: want at least 1", o.K)
	}
	if o.Labels != "" {
		data, err := e.readFile(o.Labels)
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		o.labels = runner.ParseLabels(data)
	}
	return o, nil
}

func (o *topKOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 2, tensor.FP32)
	if err != nil {
		return nil, err
	}
	if c := s.Shape[1]; c >= 0 && int64(o.K) > c {
		return nil, fmt.Errorf("k %d exceeds the %d classes of input %q", o.K, c, "x")
	}
	if c := s.Shape[1]; c >= 0 && o.labels != nil && int64(len(o.labels)) != c {
		return nil, fmt.Errorf("labels %s holds %d labels for %d classes", o.Labels, len(o.labels), c)
	}
	n, k := s.Shape[0], int64(o.K)
	out := map[string]runner.TensorSpec{
		"scores":  spec("scores", tensor.FP32, n, k),
		"indices": spec("indices", tensor.Int64, n, k),
	}
	if o.labels != nil {
		out["labels"] = spec("labels", tensor.Bytes, n, k)
	}
	return out, nil
}

func (o *topKOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	v, err := tensor.Values[float32](x)
	if err != nil {
		return nil, err
	}
	n, c := int(x.Shape[0]), int(x.Shape[1])
	if o.K > c || o.labels != nil && len(o.labels) != c {
		return nil, fmt.Errorf("input %q has %d classes, want at least k (%d) and as many as the labels", "x", c, o.K)
	}
	scores := make([]float32, 0, n*o.K)
	indices := make([]int64, 0, n*o.K)
	var labels [][]byte
	order := make([]int, c)
	for i := range n {
		row := v[i*c : (i+1)*c]
		best := tensor.TopK(row, o.K, order)
		for _, k := range best {
			scores, indices = append(scores, row[k]), append(indices, int64(k))
			if o.labels != nil {
				labels = append(labels, []byte(o.labels[k]))
			}
		}
	}
	shape := []int64{int64(n), int64(o.K)}
	out := map[string]tensor.Tensor{"scores": tensor.New("scores", shape, scores), "indices": tensor.New("indices", shape, indices)}
	if o.labels != nil {
		out["labels"] = bytesTensor("labels", shape, labels)
	}
	return out, nil
}

// meanPoolOp averages token embeddings over the tokens a mask keeps, as
// sentence encoders pool. Inputs x: FP32 [n, tokens, dim], and mask:
// INT64 [n, tokens] (1 keeps a token). Output y: FP32 [n, dim]; a row
// with no token kept is zeros.
type meanPoolOp struct{}

func newMeanPool(params *yaml.Node, _ env) (op, error) {
	return meanPoolOp{}, decodeParams(params, &noParams{})
}

func (meanPoolOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	x, err := need(in, "x", 3, tensor.FP32)
	if err != nil {
		return nil, err
	}
	if _, err := need(in, "mask", 2, tensor.Int64); err != nil {
		return nil, err
	}
	return map[string]runner.TensorSpec{"y": spec("y", tensor.FP32, x.Shape[0], x.Shape[2])}, nil
}

func (meanPoolOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x, m := in["x"], in["mask"]
	if !slices.Equal(x.Shape[:2], m.Shape) {
		return nil, fmt.Errorf("input %q has shape %v and %q %v: want the same [n, tokens]", "x", x.Shape, "mask", m.Shape)
	}
	xs, err := tensor.Values[float32](x)
	if err != nil {
		return nil, err
	}
	ms, err := tensor.Values[int64](m)
	if err != nil {
		return nil, err
	}
	n, tokens, dim := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2])
	y := make([]float32, n*dim)
	for i := range n {
		out, kept := y[i*dim:(i+1)*dim], 0
		for t := range tokens {
			if ms[i*tokens+t] == 0 {
				continue
			}
			kept++
			for d, v := range xs[(i*tokens+t)*dim:][:dim] {
				out[d] += v
			}
		}
		for d := range out {
			if kept > 0 {
				out[d] /= float32(kept)
			}
		}
	}
	return map[string]tensor.Tensor{"y": tensor.New("y", []int64{int64(n), int64(dim)}, y)}, nil
}

// l2Op scales each row of x to unit Euclidean length. Input x: FP32 [n,
// dim]. Output y: FP32 [n, dim]; a zero row stays zero.
type l2Op struct{}

func newL2Normalize(params *yaml.Node, _ env) (op, error) {
	return l2Op{}, decodeParams(params, &noParams{})
}

func (l2Op) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 2, tensor.FP32)
	return map[string]runner.TensorSpec{"y": spec("y", tensor.FP32, s.Shape...)}, err
}

func (l2Op) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	v, err := tensor.Values[float32](x)
	if err != nil {
		return nil, err
	}
	for row := range slices.Chunk(v, int(x.Shape[1])) {
		var sum float64
		for _, e := range row {
			sum += float64(e) * float64(e)
		}
		if sum == 0 {
			continue
		}
		inv := 1 / math.Sqrt(sum)
		for i := range row {
			row[i] = float32(float64(row[i]) * inv)
		}
	}
	return map[string]tensor.Tensor{"y": tensor.New("y", x.Shape, v)}, nil
}

// reshapeOp gives x's elements another shape. Input x: any datatype but
// BYTES. Output y: Shape, where one -1 takes what the others leave (as
// Triton's reshape and ONNX's Reshape do).
type reshapeOp struct {
	Shape []int64 `yaml:"shape"`
}

func newReshape(params *yaml.Node, _ env) (op, error) {
	o := &reshapeOp{}
	if err := decodeParams(params, o); err != nil {
		return nil, err
	}
	free := 0
	for _, d := range o.Shape {
		if d == -1 {
			free++
		} else if d < 1 {
			return nil, fmt.Errorf("shape %v: want dimensions of at least 1 and at most one -1", o.Shape)
		}
	}
	if len(o.Shape) == 0 || free > 1 {
		return nil, fmt.Errorf("shape %v: want dimensions of at least 1 and at most one -1", o.Shape)
	}
	return o, nil
}

func (o *reshapeOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	s, err := need(in, "x", 0)
	if err == nil && s.DataType.Size() == 0 {
		err = fmt.Errorf("input %q is %s, want a fixed-size datatype", "x", s.DataType)
	}
	if err != nil {
		return nil, err
	}
	return map[string]runner.TensorSpec{"y": spec("y", s.DataType, o.Shape...)}, nil
}

func (o *reshapeOp) run(_ context.Context, in map[string]tensor.Tensor, _ []string, _ *profile.Timing) (map[string]tensor.Tensor, error) {
	x := in["x"]
	n := tensor.Elements(x.Shape)
	shape := slices.Clone(o.Shape)
	known, at := int64(1), -1
	for i, d := range shape {
		if d == -1 {
			at = i
		} else {
			known *= d
		}
	}
	if at >= 0 && n%known == 0 {
		shape[at] = n / known
	}
	if tensor.Elements(shape) != n {
		return nil, fmt.Errorf("input %q holds %d elements (shape %v), which shape %v cannot hold", "x", n, x.Shape, o.Shape)
	}
	return map[string]tensor.Tensor{"y": {DataType: x.DataType, Shape: shape, Data: x.Data}}, nil
}
