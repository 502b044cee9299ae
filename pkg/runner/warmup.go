package runner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// warmup runs generated inputs through every instance, for at most
// limit (the load timeout): a warm-up that would run past it stops there,
// with a warning, and the version serves, warmed by the runs it made.
func (m *Model) warmup(limit time.Duration) error {
	start := time.Now()
	defer func() { m.warmupDuration = time.Since(start) }()
	runs := *m.cfg.Warmup.Runs
	if runs == 0 {
		return nil
	}
	rows := int64(m.cfg.Warmup.BatchSize)
	if !m.stacked {
		rows = 1
	}
	// The shapes come from the model file: count before allocating.
	if err := CheckSyntheticInputs(m.meta.Inputs, rows, m.stacked); err != nil {
		return fmt.Errorf("%w; turn warm-up off with warmup.runs: 0", err)
	}
	inputs := SyntheticInputs(m.meta.Inputs, rows, m.stacked)
	if m.cfg.Warmup.Data == WarmupOne {
		inputs = warmupInputs(m.meta.Inputs, rows, m.stacked)
	}
	p := &pending{inputs: inputs, rows: rows}
	batch := []*pending{p}
	ran := 0
warm:
	for _, in := range m.instances {
		for range runs {
			if ran > 0 && time.Since(start) >= limit {
				m.log.Warn("warm-up stopped at the load timeout: the version serves warmed by the runs it made",
					"runs", ran, "of", runs*len(m.instances), "load_timeout", limit)
				break warm
			}
			if _, err := in.execute(batch, nil); err != nil {
				return m.batchedHint(err)
			}
			ran++
		}
	}
	return m.batchedHint(m.checkRows())
}

// batchedHint adds to a batched model's failed warm-up the likeliest
// cause: outputs of fixed row size are allocated for the batch's rows
// before the run, and the runtime refuses an output of another size.
func (m *Model) batchedHint(err error) error {
	var died *HostDiedError
	if err == nil || !m.stacked || strings.Contains(err.Error(), rowsAdvice) || errors.As(err, &died) {
		return err // a host's death is its own cause: the message says it
	}
	return fmt.Errorf("%w (a batch of rows failed: if the model's outputs do not hold one row per input row, %s)", err, rowsAdvice)
}

// checkRows runs a batch of two rows on a batched model's first instance,
// so that a model whose outputs do not hold one row per input row (which
// a batch of one can hide) is refused at load with that reason rather
// than failing every request: the instance checks each output's rows.
func (m *Model) checkRows() error {
	const rows = 2
	if !m.stacked || m.cfg.Warmup.BatchSize >= rows || len(m.instances) == 0 {
		return nil
	}
	if err := CheckSyntheticInputs(m.meta.Inputs, rows, true); err != nil {
		return nil // the warm-up's own batch ran; a larger one would not fit
	}
	inputs := warmupInputs(m.meta.Inputs, rows, true)
	if m.cfg.Warmup.Data != WarmupOne {
		inputs = SyntheticInputs(m.meta.Inputs, rows, true)
	}
	_, err := m.instances[0].execute([]*pending{{inputs: inputs, rows: rows}}, nil)
	return err
}

// warmupInputs returns the warm-up's inputs: SyntheticInputs with every
// element 1 (true for BOOL). One is the value a graph is least likely to
// refuse: it divides, takes logarithms and square roots, and indexes any
// dimension of two or more, where zero fails integer division (a SIGFPE
// that would end a model host), is -Inf through Log and NaN through
// division of floats.
func warmupInputs(specs []TensorSpec, rows int64, batched bool) []tensor.Tensor {
	ins := SyntheticInputs(specs, rows, batched)
	for i := range ins {
		fillOnes(ins[i])
	}
	return ins
}

// fillOnes sets every element of t to one.
func fillOnes(t tensor.Tensor) {
	size := t.DataType.Size()
	if size == 0 || len(t.Data) == 0 {
		return
	}
	one := make([]byte, size)
	switch t.DataType {
	case tensor.FP16:
		binary.LittleEndian.PutUint16(one, 0x3c00)
	case tensor.BF16:
		binary.LittleEndian.PutUint16(one, 0x3f80)
	case tensor.FP32:
		binary.LittleEndian.PutUint32(one, math.Float32bits(1))
	case tensor.FP64:
		binary.LittleEndian.PutUint64(one, math.Float64bits(1))
	default: // BOOL and the integers: 1 in the lowest byte
		one[0] = 1
	}
	for off := 0; off < len(t.Data); off += size {
		copy(t.Data[off:], one)
	}
}

// MaxSyntheticBytes bounds the generated inputs of a warm-up or a demo
// run (256 MiB): their shapes come from the model file, which may declare
// any size.
const MaxSyntheticBytes = 256 << 20

// CheckSyntheticInputs reports an error when SyntheticInputs(specs, rows,
// batched) would allocate more than MaxSyntheticBytes, or a size that
// overflows, naming the input. Call it first: a model file is outside
// input.
func CheckSyntheticInputs(specs []TensorSpec, rows int64, batched bool) error {
	var total int64
	for _, s := range specs {
		if s.DataType.Size() == 0 {
			continue // strings: SyntheticInputs makes none
		}
		shape := syntheticShape(s, rows, batched)
		n, err := tensor.ElementsChecked(shape)
		if err == nil {
			n, err = tensor.ByteSize(n, s.DataType)
		}
		if err != nil || n > MaxSyntheticBytes-total {
			return fmt.Errorf("input %q: generated data of shape %v (%s) would take more than %d MiB", s.Name, shape, s.DataType, MaxSyntheticBytes>>20)
		}
		total += n
	}
	return nil
}

// SyntheticInputs returns zero-filled inputs for specs, with rows in the
// batch dimension when batched and 1 in every other dynamic dimension.
func SyntheticInputs(specs []TensorSpec, rows int64, batched bool) []tensor.Tensor {
	out := make([]tensor.Tensor, len(specs))
	for i, s := range specs {
		shape := syntheticShape(s, rows, batched)
		out[i] = tensor.Tensor{Name: s.Name, DataType: s.DataType, Shape: shape,
			Data: make([]byte, tensor.Elements(shape)*int64(s.DataType.Size()))}
	}
	return out
}

// syntheticShape returns spec's shape with rows in the batch dimension
// when batched and 1 in every other dynamic dimension.
func syntheticShape(spec TensorSpec, rows int64, batched bool) []int64 {
	shape := make([]int64, len(spec.Shape))
	for j, d := range spec.Shape {
		switch {
		case j == 0 && batched:
			shape[j] = rows
		case d < 0:
			shape[j] = 1
		default:
			shape[j] = d
		}
	}
	return shape
}
