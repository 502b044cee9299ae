package runner

import (
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/modelhost"
	"github.com/infer-serving/infer/pkg/tensor"
)

// hostedInstance runs a model version's batches in a model host: it
// gathers each batch's inputs into the region the two share, and copies
// the outputs out. It is owned by one worker, which also restarts its
// host when it dies.
type hostedInstance struct {
	layout
	*host
	padded []bool // per input: its rows are padded (reused)
	bufs   [][]byte
	shapes [][]int64
}

// newHostedInstance starts a host for one instance of model version m.
func newHostedInstance(m *Model, onnx []byte, cfg Config, dev Device, opts LoadOptions) (*hostedInstance, Device, error) {
	h, used, err := newHost(m.meta, onnx, newModelSource(onnx, opts.ReadModel, opts.OpenModel, opts.modelSum), cfg, dev, m.hosts, m.closing, m.log, opts.loadTimeout())
	if err != nil {
		return nil, Device{}, err
	}
	return &hostedInstance{layout: newLayout(m.meta, m.stacked), host: h,
		bufs: make([][]byte, len(m.meta.Outputs)), shapes: make([][]int64, len(m.meta.Outputs))}, used, nil
}

func (h *hostedInstance) died() <-chan struct{} { return h.dead }

// revive restarts the host if it is down; one that is closing stays as
// it is (the next batch fails with why). When another instance's crashes
// made the version give up, this instance's host is stopped: the version
// serves nothing until it is loaded again, and its hosts would only hold
// their sessions' memory.
func (h *hostedInstance) revive() {
	if h.health.downReason() != "" {
		h.stop()
		return
	}
	_ = h.ready()
}

func (h *hostedInstance) execute(batch []*pending, resps []Response) (execution, error) {
	ex := startExecution(batch)
	rows := ex.rows
	if err := h.ready(); err != nil {
		return ex, err
	}
	h.padded = h.padded[:0]
	mem, err := h.layOut(len(h.inputs), func(i int) ([]int64, int) {
		size, shape, pad := h.gathered(batch, i)
		h.padded = append(h.padded, pad)
		return shape, size
	})
	if err != nil {
		return ex, err
	}
	for i, t := range h.run.Inputs {
		h.gatherTo(mem[t.Offset:t.Offset+t.Length], batch, i, h.padded[i])
	}
	err = h.exchange()
	ex.input = time.Since(ex.start) - h.result.Infer
	ex.infer = h.result.Infer
	if err != nil {
		return ex, err
	}
	done := time.Now()
	if err := h.collect(rows); err != nil {
		return ex, err
	}
	if resps != nil {
		h.split(batch, rows, h.bufs, h.shapes, resps)
	}
	clear(h.bufs)
	clear(h.shapes)
	ex.end = time.Now()
	ex.output = ex.end.Sub(done)
	return ex, nil
}

// collect copies the batch's outputs out of the region into one new
// allocation (the responses own them), checking each against its spec.
func (h *hostedInstance) collect(rows int64) error {
	res := &h.result
	if len(res.Outputs) != len(h.outputs) {
		return fmt.Errorf("model host answered %d outputs, the model has %d", len(res.Outputs), len(h.outputs))
	}
	total, dims := int64(0), 0
	mem := h.region.Bytes()
	for j, o := range res.Outputs {
		if err := checkOutput(h.outputs[j], o, mem, h.stacked, rows); err != nil {
			return err
		}
		total += o.Length
		dims += len(o.Shape)
	}
	data := make([]byte, total)
	shapes := make([]int64, dims)
	for j, o := range res.Outputs {
		n := copy(data, mem[o.Offset:o.Offset+o.Length])
		h.bufs[j], data = data[:n:n], data[n:]
		h.shapes[j], shapes = shapes[:len(o.Shape):len(o.Shape)], shapes[len(o.Shape):]
		copy(h.shapes[j], o.Shape)
	}
	return nil
}

// checkOutput refuses an output that lies outside the region mem, whose
// bytes do not match its shape and type, or whose rows are not the
// batch's.
func checkOutput(spec TensorSpec, o modelhost.Tensor, mem []byte, stacked bool, rows int64) error {
	if o.Offset < 0 || o.Length < 0 || o.Offset > int64(len(mem))-o.Length {
		return fmt.Errorf("output %q: %d bytes at %d, outside the %d-byte region", spec.Name, o.Length, o.Offset, len(mem))
	}
	if spec.DataType == tensor.Bytes {
		// Elements of varying length: count them.
		t := tensor.Tensor{Name: spec.Name, DataType: spec.DataType, Shape: o.Shape, Data: mem[o.Offset : o.Offset+o.Length]}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("output %w", err)
		}
	} else if n, err := shapeBytes(spec, o.Shape); err != nil {
		return fmt.Errorf("output %w", err)
	} else if n != o.Length {
		return fmt.Errorf("output %q: shape %v of %s takes %d bytes, the host wrote %d", spec.Name, o.Shape, spec.DataType, n, o.Length)
	}
	if stacked && (len(o.Shape) == 0 || o.Shape[0] != rows) {
		return errRows(spec.Name, o.Shape, rows)
	}
	return nil
}
