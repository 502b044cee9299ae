package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// An op is one kind of step: a built-in operation or a served model. Its
// ports are named; a step's input_map and output_map connect them to the
// pipeline's tensors.
type op interface {
	// plan checks the specs of the tensors mapped to the op's inputs
	// (shapes with -1 for what is known only per request) and returns the
	// specs of its outputs, by port name.
	plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error)
	// run computes the outputs that want names from the inputs (want is
	// never empty); a model's run adds its queue and infer time to t.
	// Errors are the client's unless they say otherwise: the pipeline
	// wraps them with runner.ErrInvalidInput and the step's name.
	run(ctx context.Context, in map[string]tensor.Tensor, want []string, t *profile.Timing) (map[string]tensor.Tensor, error)
}

// env is what an op is built with.
type env struct {
	repo     *runner.Repository
	readFile func(string) ([]byte, error)
}

// builtins are the built-in ops by the name a step's op: gives, each
// made from its params block.
var builtins = map[string]func(params *yaml.Node, e env) (op, error){
	"image_decode": newDecode,
	"image_resize": newResize,
	"normalize":    newNormalize,
	"layout":       newLayout,
	"tokenize":     newTokenize,
	"softmax":      newSoftmax,
	"top_k":        newTopK,
	"ctc_decode":   newCTCDecode,
	"mean_pool":    newMeanPool,
	"l2_normalize": newL2Normalize,
	"reshape":      newReshape,
}

// decodeParams reads a params block into v, refusing unknown keys; a
// missing block leaves v's defaults.
func decodeParams(params *yaml.Node, v any) error {
	if params == nil || params.Kind == 0 {
		return nil
	}
	if err := strictDecode(params, v); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}

// need returns the spec of input port name, checking its datatype (one of
// types; none: any) and rank (0: any).
func need(in map[string]runner.TensorSpec, name string, rank int, types ...tensor.DataType) (runner.TensorSpec, error) {
	s, ok := in[name]
	if !ok {
		return s, fmt.Errorf("input %q is not mapped", name)
	}
	if len(types) > 0 && !slices.Contains(types, s.DataType) {
		return s, fmt.Errorf("input %q is %s, want %v", name, s.DataType, types)
	}
	if rank > 0 && len(s.Shape) != rank {
		return s, fmt.Errorf("input %q has shape %v, want %d dimensions", name, s.Shape, rank)
	}
	return s, nil
}

// check verifies a tensor against the spec it was planned with: its
// datatype, rank and every fixed dimension, and its data's length.
func check(t tensor.Tensor, s runner.TensorSpec) error {
	if t.DataType != s.DataType {
		return fmt.Errorf("%q is %s, want %s", s.Name, t.DataType, s.DataType)
	}
	if len(t.Shape) != len(s.Shape) {
		return fmt.Errorf("%q has shape %v, want %d dimensions (%v)", s.Name, t.Shape, len(s.Shape), s.Shape)
	}
	for i, d := range t.Shape {
		if s.Shape[i] >= 0 && d != s.Shape[i] {
			return fmt.Errorf("%q has shape %v, want %v", s.Name, t.Shape, s.Shape)
		}
		if d < 1 {
			return fmt.Errorf("%q has shape %v: every dimension must be at least 1", s.Name, t.Shape)
		}
	}
	return t.Validate()
}

// spec is a TensorSpec literal.
func spec(name string, dt tensor.DataType, shape ...int64) runner.TensorSpec {
	return runner.TensorSpec{Name: name, DataType: dt, Shape: shape}
}

// strings returns a BYTES tensor's elements.
func stringsOf(t tensor.Tensor) [][]byte {
	var out [][]byte
	for data := t.Data; len(data) >= 4; {
		n := binary.LittleEndian.Uint32(data)
		out = append(out, data[4:4+n])
		data = data[4+n:]
	}
	return out
}

// bytesTensor returns a BYTES tensor of the given elements.
func bytesTensor(name string, shape []int64, elems [][]byte) tensor.Tensor {
	n := 0
	for _, e := range elems {
		n += 4 + len(e)
	}
	data := make([]byte, 0, n)
	for _, e := range elems {
		data = binary.LittleEndian.AppendUint32(data, uint32(len(e)))
		data = append(data, e...)
	}
	return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: shape, Data: data}
}
