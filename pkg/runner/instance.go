package runner

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unsafe"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/tensor"
)

// instance is one ONNX Runtime session of a model version, run in this
// process. It executes one batch at a time and is owned by exactly one
// worker goroutine, so its scratch buffers need no lock.
type instance struct {
	layout
	session *ort.DynamicAdvancedSession

	// Reused across executions: concatenated inputs, the value slices
	// handed to the runtime, and each output's bytes and shape.
	scratch [][]byte
	ins     []ort.Value
	outs    []ort.Value
	bufs    [][]byte
	shapes  [][]int64
}

// newInstance creates an instance's session with newSessionOrCPU and
// returns the device actually used.
func newInstance(onnx []byte, meta Metadata, cfg Config, dev Device, log *slog.Logger) (*instance, Device, error) {
	session, used, err := newSessionOrCPU(onnx, meta, cfg, dev, log)
	if err != nil {
		return nil, Device{}, err
	}
	in := &instance{
		layout:  newLayout(meta, stacked(meta, cfg)),
		session: session,
		scratch: make([][]byte, len(meta.Inputs)),
		ins:     make([]ort.Value, len(meta.Inputs)),
		outs:    make([]ort.Value, len(meta.Outputs)),
		bufs:    make([][]byte, len(meta.Outputs)),
		shapes:  make([][]int64, len(meta.Outputs)),
	}
	return in, used, nil
}

// newSessionOrCPU creates a session on dev. When dev cannot be used and
// cfg.FallbackToCPU is set, the session is created on the CPU instead; the
// device actually used is returned.
func newSessionOrCPU(onnx []byte, meta Metadata, cfg Config, dev Device, log *slog.Logger) (*ort.DynamicAdvancedSession, Device, error) {
	session, err := newSession(onnx, meta, cfg, dev)
	if err != nil && dev.Kind != "cpu" && cfg.FallbackToCPU {
		log.Warn("device unavailable, falling back to cpu", "device", dev.String(), "err", err)
		dev = Device{Kind: "cpu"}
		session, err = newSession(onnx, meta, cfg, dev)
	}
	return session, dev, err
}

func newSession(onnx []byte, meta Metadata, cfg Config, dev Device) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if cfg.IntraOpThreads > 0 {
		if err := opts.SetIntraOpNumThreads(cfg.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("intra_op_threads: %w", err)
		}
	}
	if cfg.InterOpThreads > 0 {
		if err := opts.SetInterOpNumThreads(cfg.InterOpThreads); err != nil {
			return nil, fmt.Errorf("inter_op_threads: %w", err)
		}
	}
	spin := "0"
	if cfg.ThreadSpinning {
		spin = "1"
	}
	for _, key := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := opts.AddSessionConfigEntry(key, spin); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := appendProvider(opts, dev, cfg.ProviderOptions); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDeviceUnavailable, dev, err)
	}
	names := func(specs []TensorSpec) []string {
		s := make([]string, len(specs))
		for i, t := range specs {
			s[i] = t.Name
		}
		return s
	}
	session, err := ort.NewDynamicAdvancedSessionWithONNXData(onnx, names(meta.Inputs), names(meta.Outputs), opts)
	if err != nil {
		return nil, fmt.Errorf("create session on %s: %w", dev, err)
	}
	return session, nil
}

// appendProvider adds the execution provider for dev. CPU needs none;
// TensorRT is given CUDA after it for the nodes TensorRT cannot take.
func appendProvider(opts *ort.SessionOptions, dev Device, extra map[string]string) error {
	withID := func() map[string]string {
		m := map[string]string{"device_id": strconv.Itoa(dev.ID)}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	classic := func() error {
		c, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return err
		}
		defer c.Destroy()
		if err := c.Update(withID()); err != nil {
			return err
		}
		return opts.AppendExecutionProviderCUDA(c)
	}
	// The CUDA provider compiled into the runtime's interface, else the
	// same provider as a plugin library beside it.
	cuda := func() error {
		err := classic()
		if err == nil {
			return nil
		}
		perr := appendCUDAPlugin(opts, dev, extra)
		if perr == nil {
			return nil
		}
		return fmt.Errorf("%w; as a plugin library: %v", err, perr)
	}
	switch dev.Kind {
	case "cuda":
		return cuda()
	case "tensorrt":
		t, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return err
		}
		defer t.Destroy()
		if err := t.Update(withID()); err != nil {
			return err
		}
		if err := opts.AppendExecutionProviderTensorRT(t); err != nil {
			return err
		}
		return cuda()
	}
	return nil
}

func (in *instance) close() {
	if in.session != nil {
		_ = in.session.Destroy()
		in.session = nil
	}
}

// execution describes one run of a batch.
type execution struct {
	rows int64
	// start and end bound the execution.
	start, end time.Time
	// input is gathering the inputs and handing them to the runtime, infer
	// the runtime's Run, output splitting the outputs among the requests.
	input, infer, output time.Duration
}

// execute runs batch as one execution and sets each request's outputs in
// resps, one response a request: its own rows of the outputs it asked for.
// With resps nil the outputs are dropped.
// died never fires: an instance in process has no host to lose.
func (in *instance) died() <-chan struct{} { return nil }

func (in *instance) revive() {}

func (in *instance) execute(batch []*pending, resps []Response) (execution, error) {
	ex := startExecution(batch)
	rows := ex.rows
	defer in.release()
	for i, spec := range in.inputs {
		data, shape := in.gather(batch, i)
		v, err := ort.NewCustomDataTensor(shape, data, ortType(spec.DataType))
		if err != nil {
			return ex, fmt.Errorf("input %q: %w", spec.Name, err)
		}
		in.ins[i] = v
	}
	bufs := in.bufs
	for j, spec := range in.outputs {
		n := in.outputBytes(j, rows)
		if n < 0 {
			continue // dynamic dims: the runtime allocates it
		}
		bufs[j] = make([]byte, n)
		v, err := ort.NewCustomDataTensor(in.outputShape(j, rows), bufs[j], ortType(spec.DataType))
		if err != nil {
			return ex, fmt.Errorf("output %q: %w", spec.Name, err)
		}
		in.outs[j] = v
	}
	ran := time.Now()
	ex.input = ran.Sub(ex.start)
	err := in.session.Run(in.ins, in.outs)
	done := time.Now()
	ex.infer = done.Sub(ran)
	if err != nil {
		return ex, fmt.Errorf("run: %w", err)
	}
	shapes := in.shapes
	for j, spec := range in.outputs {
		if bufs[j] == nil {
			if bufs[j], shapes[j], err = valueBytes(in.outs[j], spec); err != nil {
				return ex, err
			}
		} else {
			shapes[j] = in.outs[j].GetShape()
		}
		if in.stacked && (len(shapes[j]) == 0 || shapes[j][0] != rows) {
			return ex, errRows(spec.Name, shapes[j], rows)
		}
	}
	if resps != nil {
		in.split(batch, rows, bufs, shapes, resps)
	}
	ex.end = time.Now()
	ex.output = ex.end.Sub(done)
	return ex, nil
}

// gather returns input i of the batch: the request's own tensor when it is
// alone, else the requests' rows concatenated into a reused buffer.
func (in *instance) gather(batch []*pending, i int) ([]byte, []int64) {
	if len(batch) == 1 {
		first := batch[0].inputs[i]
		return first.Data, first.Shape
	}
	size, shape, padded := in.gathered(batch, i)
	buf := in.scratch[i]
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	in.gatherTo(buf, batch, i, padded)
	in.scratch[i] = buf
	return buf, shape
}

// release destroys the runtime values of the last execution and lets go
// of its outputs, which belong to the responses now.
func (in *instance) release() {
	clear(in.bufs)
	clear(in.shapes)
	for _, vs := range [][]ort.Value{in.ins, in.outs} {
		for i, v := range vs {
			// The runtime binding can store a typed nil when it fails to
			// convert an output it allocated.
			if cdt, ok := v.(*ort.CustomDataTensor); v != nil && !(ok && cdt == nil) {
				_ = v.Destroy()
			}
			vs[i] = nil
		}
	}
}

// valueBytes returns the elements and the shape of an output the runtime
// allocated; an output that is not a tensor is converted (jsonOutput).
func valueBytes(v ort.Value, spec TensorSpec) ([]byte, []int64, error) {
	if spec.Content == ContentJSON {
		return jsonOutput(v, spec)
	}
	var b []byte
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		b = asBytes(t.GetData())
	case *ort.Tensor[float64]:
		b = asBytes(t.GetData())
	case *ort.Tensor[int8]:
		b = asBytes(t.GetData())
	case *ort.Tensor[int16]:
		b = asBytes(t.GetData())
	case *ort.Tensor[int32]:
		b = asBytes(t.GetData())
	case *ort.Tensor[int64]:
		b = asBytes(t.GetData())
	case *ort.Tensor[uint8]:
		b = asBytes(t.GetData())
	case *ort.Tensor[uint16]:
		b = asBytes(t.GetData())
	case *ort.Tensor[uint32]:
		b = asBytes(t.GetData())
	case *ort.Tensor[uint64]:
		b = asBytes(t.GetData())
	case *ort.Tensor[bool]:
		b = asBytes(t.GetData())
	case *ort.CustomDataTensor:
		b = t.GetData()
	default:
		return nil, nil, fmt.Errorf("output %q: unsupported runtime value %T", spec.Name, v)
	}
	shape := v.GetShape()
	want := tensor.Elements(shape) * int64(spec.DataType.Size())
	if int64(len(b)) != want {
		return nil, nil, fmt.Errorf("output %q: runtime returned %d bytes for shape %v of %s (want %d)", spec.Name, len(b), shape, spec.DataType, want)
	}
	return b, shape, nil
}

// asBytes views a slice of fixed-size elements as its bytes.
func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}
