package runner

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// executor runs batches of one model version: an in-process instance
// (one runtime session) or a hosted one (a session in a model host
// process). Each is owned by exactly one worker goroutine.
type executor interface {
	// execute runs batch as one execution and sets each request's
	// outputs in resps, one response a request: its own rows of the
	// outputs it asked for. With resps nil the outputs are dropped.
	execute(batch []*pending, resps []Response) (execution, error)
	// died fires when the executor's model host dies on its own (nil
	// for an instance in process), and revive brings the host back, so
	// that a host that dies while idle (killed, or the OOM killer's
	// victim) is replaced at once, not by the next request's wait.
	died() <-chan struct{}
	revive()
	close()
}

// maxFixedRowBytes bounds an output row allocated before a run (64 MiB).
const maxFixedRowBytes = 64 << 20

// startExecution counts a batch's rows and starts its clock.
func startExecution(batch []*pending) execution {
	ex := execution{start: time.Now()}
	for _, p := range batch {
		ex.rows += p.rows
	}
	return ex
}

// layout is how a model version's batches are laid out in memory: which
// inputs are stacked along the batch dimension, padded, and how big each
// output's row is. In-process and hosted instances share it.
type layout struct {
	inputs  []TensorSpec
	outputs []TensorSpec
	// stacked is set for a batched model (see stacked): requests are
	// stacked along the first dimension, outputs are sized from it, and
	// each output must hold one row per input row.
	stacked bool
	// pad holds, for each ragged input ([batch, sequence] INT64), the value
	// its rows are padded with to the batch's longest sequence; nil for
	// the others.
	pad []*int64
	// outRowBytes[j] is the size of one row of output j when every
	// dimension but the batch one is fixed (the whole tensor for unbatched
	// models), or -1 when the runtime must allocate the output.
	outRowBytes []int64
	outShape    [][]int64
}

// stacked reports whether a model is batched: max_batch_size above 0, as
// Triton reads it, and every input and output with a dynamic first
// dimension. With max_batch_size 0 a model runs each request as it comes,
// whatever its dynamic dimensions say: a detector returning [detections, 6]
// or a model that concatenates rows is served, unbatched.
func stacked(meta Metadata, cfg Config) bool {
	return cfg.MaxBatchSize != nil && *cfg.MaxBatchSize > 0 && batchable(meta.Inputs, meta.Outputs)
}

// errRows is the error of a batched model whose output does not hold one
// row per input row: the batcher could not give each request its rows.
func errRows(name string, shape []int64, rows int64) error {
	return fmt.Errorf("output %q: shape %v for a batch of %d rows: a batched model must return one output row per input row; %s", name, shape, rows, rowsAdvice)
}

// rowsAdvice is the way out for a model whose outputs' first dimension is
// not the batch.
const rowsAdvice = "serve it unbatched with max_batch_size: 0"

func newLayout(meta Metadata, stacked bool) layout {
	l := layout{
		inputs:      meta.Inputs,
		outputs:     meta.Outputs,
		stacked:     stacked,
		outRowBytes: make([]int64, len(meta.Outputs)),
		outShape:    make([][]int64, len(meta.Outputs)),
	}
	for j, o := range meta.Outputs {
		dims := o.Shape
		if l.stacked {
			dims = dims[1:]
		}
		l.outShape[j] = append([]int64{0}, dims...)
		// A row of fixed size is allocated before the run; one the file
		// declares too large (or overflowing) is left to the runtime,
		// which allocates what the run actually makes.
		l.outRowBytes[j] = -1
		if n, err := tensor.ElementsChecked(dims); err == nil && n > 0 {
			if b, err := tensor.ByteSize(n, o.DataType); err == nil && b <= maxFixedRowBytes {
				l.outRowBytes[j] = b
			}
		}
	}
	return l
}

// outputBytes returns the size of output j for a batch of rows, or -1
// when the runtime must allocate it.
func (l *layout) outputBytes(j int, rows int64) int64 {
	n := l.outRowBytes[j]
	if n >= 0 && l.stacked {
		n *= rows
	}
	return n
}

// outputShape returns output j's shape for a batch of rows, when its size
// is fixed. The slice is the layout's own, reused across executions.
func (l *layout) outputShape(j int, rows int64) []int64 {
	if !l.stacked {
		return l.outputs[j].Shape
	}
	shape := l.outShape[j]
	shape[0] = rows
	return shape
}

// gathered returns the size in bytes and the shape of input i of batch
// once gathered, and whether its rows are padded to the longest.
func (l *layout) gathered(batch []*pending, i int) (int, []int64, bool) {
	first := batch[0].inputs[i]
	if len(batch) == 1 {
		return len(first.Data), first.Shape, false
	}
	var rows int64
	size := 0
	longest, uniform := int64(0), true
	ragged := l.pad != nil && l.pad[i] != nil
	for _, p := range batch {
		t := p.inputs[i]
		size += len(t.Data)
		rows += p.rows
		if ragged {
			uniform = uniform && (longest == 0 || t.Shape[1] == longest)
			longest = max(longest, t.Shape[1])
		}
	}
	if ragged && !uniform {
		return int(rows * longest * 8), []int64{rows, longest}, true
	}
	return size, append([]int64{rows}, first.Shape[1:]...), false
}

// gatherTo writes input i of batch into dst, which holds exactly its
// gathered size: the requests' rows concatenated, each padded to the
// longest sequence when padded is set.
func (l *layout) gatherTo(dst []byte, batch []*pending, i int, padded bool) {
	if !padded {
		off := 0
		for _, p := range batch {
			off += copy(dst[off:], p.inputs[i].Data)
		}
		return
	}
	pad, longest := *l.pad[i], int64(len(dst))/8
	var rows int64
	for _, p := range batch {
		rows += p.rows
	}
	longest /= rows
	buf := dst[:0]
	for _, p := range batch {
		t := p.inputs[i]
		row := int(t.Shape[1]) * 8
		for r := 0; r < int(p.rows); r++ {
			buf = append(buf, t.Data[r*row:(r+1)*row]...)
			for range longest - t.Shape[1] {
				buf = binary.LittleEndian.AppendUint64(buf, uint64(pad))
			}
		}
	}
}

// split hands each request its own rows of each output it asked for, as
// the Outputs of its response in resps. The slices alias the batch's output
// buffers, capped so that no caller can write into another's rows.
//
// The tensors and shapes of the whole batch are carved out of one
// allocation each, rather than a few per request.
func (l *layout) split(batch []*pending, rows int64, bufs [][]byte, shapes [][]int64, resps []Response) {
	count, dims := 0, 0
	for _, p := range batch {
		for i := range p.outputCount(len(l.outputs)) {
			count++
			dims += len(shapes[p.output(i)])
		}
	}
	tensors := make([]tensor.Tensor, count)
	dimArena := make([]int64, dims)
	// A BYTES output's elements vary in length: where each request's rows
	// begin is found by walking them, once a batch.
	var bounds [][]int64
	for j, o := range l.outputs {
		if l.stacked && o.DataType == tensor.Bytes && len(batch) > 1 {
			if bounds == nil {
				bounds = make([][]int64, len(l.outputs))
			}
			bounds[j] = bytesBounds(bufs[j], shapes[j], batch)
		}
	}
	var offset int64
	for k, p := range batch {
		n := p.outputCount(len(l.outputs))
		ts := tensors[:n:n]
		tensors = tensors[n:]
		for i := range ts {
			j := p.output(i)
			data, shape := bufs[j], shapes[j]
			if l.stacked {
				rowBytes := int64(0)
				if rows > 0 {
					rowBytes = int64(len(data)) / rows
				}
				lo, hi := offset*rowBytes, (offset+p.rows)*rowBytes
				if bounds != nil && bounds[j] != nil {
					lo, hi = bounds[j][k], bounds[j][k+1]
				} else if l.outputs[j].DataType == tensor.Bytes {
					lo, hi = 0, int64(len(data)) // a batch of one request
				}
				data = data[lo:hi:hi]
				own := dimArena[:len(shape):len(shape)]
				dimArena = dimArena[len(shape):]
				own[0] = p.rows
				copy(own[1:], shape[1:])
				shape = own
			}
			ts[i] = tensor.Tensor{Name: l.outputs[j].Name, DataType: l.outputs[j].DataType, Shape: shape, Data: data}
		}
		resps[k].Outputs = ts
		offset += p.rows
	}
}

// bytesBounds returns where each request of batch begins in the BYTES
// data of a batched output of the given shape, and where the last one
// ends: len(batch)+1 byte offsets. The data holds the elements its shape
// says (the host's are checked, the instance's made so): the walk stops
// at its end regardless.
func bytesBounds(data []byte, shape []int64, batch []*pending) []int64 {
	perRow := tensor.Elements(shape[1:])
	bounds := make([]int64, len(batch)+1)
	var off int64
	for k, p := range batch {
		for e := int64(0); e < p.rows*perRow && off+4 <= int64(len(data)); e++ {
			off = min(off+4+int64(binary.LittleEndian.Uint32(data[off:])), int64(len(data)))
		}
		bounds[k+1] = off
	}
	return bounds
}
