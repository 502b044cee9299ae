package runner

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/modelhost"
	"github.com/infer-serving/infer/pkg/tensor"
)

// hostSpec is what a model host needs to create its session: sent as JSON
// in the load message, the model's bytes in the file the parent passed
// (ModelFile) or at the start of the region.
type hostSpec struct {
	Library    string // the runtime library's path
	Name       string
	Version    int64
	Inputs     []TensorSpec
	Outputs    []TensorSpec
	Config     Config
	Device     string
	ModelBytes int64
	ModelFile  bool // the model is the file at modelhost.HostModelFile
	// MemoryLimit bounds the host's private memory in bytes (0: none).
	MemoryLimit int64
}

// hostLoaded is a host's answer to its load message.
type hostLoaded struct {
	Device string // the device the session runs on
	Err    string // why the session could not be created
	// Hash is the SHA-256 state after the model's bytes (the hash's
	// MarshalBinary), from which the parent checks the model and finishes
	// the version's content digest: the host hashes what it loads, at its
	// load's priority, so that the server's thread never does.
	Hash []byte
}

// memoryFault marks a host's error after an allocation failed: the
// parent then ends the host, so that its memory goes back to the system,
// and starts another.
const memoryFault = "model host went over its memory limit: "

// ServeHost runs this process as a model host, started by the parent with
// modelhost.HostArg: it creates one session from the load message and runs
// the batches it is sent until the parent closes the socket or dies. It
// returns the process's exit code.
func ServeHost() int {
	// A host ends when its parent closes the socket or kills it, never on
	// a signal meant for the server: the parent drains first.
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("pid", os.Getpid())
	slog.SetDefault(log) // the runtime's own messages (runtimeLog) reach the parent as log lines
	// A load is throughput work: the serving tasks on the same cores
	// preempt it (HostSlice, after the load, makes the host one of them).
	prio, err := lowerForLoad()
	if err != nil {
		log.Warn("model host loads at its server's priority", "err", err)
	}
	if err := serveHost(log, prio); err != nil && !errors.Is(err, io.EOF) {
		log.Error("model host failed", "err", err)
		return 1
	}
	return 0
}

func serveHost(log *slog.Logger, prio *hostPriority) error {
	conn, region, err := modelhost.HostEnds()
	if err != nil {
		return err
	}
	msg, err := conn.Recv(0)
	if err != nil {
		return fmt.Errorf("wait for the load message: %w", err)
	}
	raw, err := modelhost.LoadSpec(msg)
	if err != nil {
		return err
	}
	var spec hostSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("load message: %w", err)
	}
	h, loaded := newHostSession(spec, region, log)
	if h != nil {
		// Every thread now, the runtime's included; later ones inherit it.
		if err := prio.serve(); err != nil {
			log.Warn("model host keeps its load's scheduling", "err", err)
		}
	}
	answer, _ := json.Marshal(loaded)
	if err := conn.Send(modelhost.AppendLoaded(nil, answer)); err != nil {
		return err
	}
	if h == nil {
		return nil
	}
	var run modelhost.Run
	var res modelhost.Result
	out := make([]byte, 0, 4096)
	for {
		msg, err := conn.Recv(0)
		if err != nil {
			return err
		}
		if err := modelhost.DecodeRun(msg, &run); err != nil {
			return fmt.Errorf("run message: %w", err)
		}
		h.run(&run, &res)
		out = modelhost.AppendResult(out[:0], &res)
		if err := conn.Send(out); err != nil {
			return err
		}
	}
}

// hostSession is a host's one session and the region it runs batches in.
type hostSession struct {
	layout
	session *ort.DynamicAdvancedSession
	region  *modelhost.Region
	ins     []ort.Value
	outs    []ort.Value
	limit   int64
}

// newHostSession creates the session spec describes; on failure it
// returns nil and the answer that says why.
func newHostSession(spec hostSpec, region *modelhost.Region, log *slog.Logger) (*hostSession, hostLoaded) {
	fail := func(err error) (*hostSession, hostLoaded) { return nil, hostLoaded{Err: err.Error()} }
	if spec.MemoryLimit > 0 {
		// RLIMIT_DATA bounds private writable mappings (Linux 4.7 on): the
		// runtime's library, session and arena, and the Go heap, not the
		// shared region. It is set above what the bare host has already
		// mapped (the Go runtime's reservations, and a race detector's
		// shadow memory in test builds), so the limit means the same
		// whatever the build.
		base, err := dataSize()
		if err != nil {
			return fail(fmt.Errorf("resources.memory: %w", err))
		}
		n := uint64(base + spec.MemoryLimit)
		if err := unix.Setrlimit(unix.RLIMIT_DATA, &unix.Rlimit{Cur: n, Max: n}); err != nil {
			return fail(fmt.Errorf("resources.memory: set the data limit: %w", err))
		}
	}
	if _, err := InitRuntime(spec.Library); err != nil {
		return fail(err)
	}
	onnx, hash, err := hostModelBytes(spec, region)
	if err != nil {
		return fail(err)
	}
	dev, err := ParseDevice(spec.Device)
	if err != nil {
		return fail(err)
	}
	meta := Metadata{Name: spec.Name, Version: spec.Version, Platform: Platform, Inputs: spec.Inputs, Outputs: spec.Outputs}
	session, used, err := newSessionOrCPU(onnx, meta, spec.Config, dev, log)
	if err != nil {
		return fail(err)
	}
	h := &hostSession{
		layout:  newLayout(meta, stacked(meta, spec.Config)),
		session: session,
		region:  region,
		ins:     make([]ort.Value, len(meta.Inputs)),
		outs:    make([]ort.Value, len(meta.Outputs)),
		limit:   spec.MemoryLimit,
	}
	return h, hostLoaded{Device: used.String(), Hash: hash}
}

// hostModelBytes reads the model a host loads, spec.ModelBytes of it: the
// whole file its parent passed (one of another size has changed since the
// parent read it), or the start of its region. It returns them with the
// SHA-256 state after them, for hostLoaded.Hash.
func hostModelBytes(spec hostSpec, region *modelhost.Region) (onnx, hash []byte, err error) {
	if spec.ModelFile {
		f := modelhost.HostModelFile()
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, nil, fmt.Errorf("model file: %w", err)
		}
		if st.Size() != spec.ModelBytes {
			return nil, nil, fmt.Errorf("%w (%d bytes now, %d before): load the version again to serve the new file", ErrModelChanged, st.Size(), spec.ModelBytes)
		}
		onnx = make([]byte, spec.ModelBytes)
		if _, err := io.ReadFull(f, onnx); err != nil {
			return nil, nil, fmt.Errorf("read the model file: %w", err)
		}
	} else {
		if spec.ModelBytes < 0 || spec.ModelBytes > int64(region.Size()) {
			return nil, nil, fmt.Errorf("model of %d bytes in a %d-byte region", spec.ModelBytes, region.Size())
		}
		onnx = bytes.Clone(region.Bytes()[:spec.ModelBytes])
	}
	h := sha256.New()
	h.Write(onnx)
	if hash, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
		return nil, nil, fmt.Errorf("hash the model: %w", err)
	}
	return onnx, hash, nil
}

// run executes one batch: inputs are read where the parent wrote them,
// outputs of fixed size are written by the runtime straight into the
// region after the inputs, and the others are copied there after the run.
func (h *hostSession) run(r *modelhost.Run, res *modelhost.Result) {
	start := time.Now()
	res.Err, res.Input, res.Infer = "", 0, 0
	res.Outputs = res.Outputs[:0]
	defer h.release()
	defer func() { res.RegionSize = int64(h.region.Size()) }()
	if err := h.execute(r, res, start); err != nil {
		res.Err = err.Error()
		res.Outputs = res.Outputs[:0]
		if h.limit > 0 && isAllocationFailure(res.Err) {
			res.Err = memoryFault + res.Err
		}
	}
}

func (h *hostSession) execute(r *modelhost.Run, res *modelhost.Result, start time.Time) error {
	if err := h.region.Remap(int(r.RegionSize)); err != nil {
		return err
	}
	if len(r.Inputs) != len(h.inputs) {
		return fmt.Errorf("%d inputs sent, the model takes %d", len(r.Inputs), len(h.inputs))
	}
	rows, end := int64(1), 0
	for i, t := range r.Inputs {
		if err := checkLength(h.inputs[i], t); err != nil {
			return err
		}
		end = max(end, int(t.Offset+t.Length))
	}
	if h.stacked && len(r.Inputs) > 0 && len(r.Inputs[0].Shape) > 0 {
		rows = r.Inputs[0].Shape[0]
	}
	// Place the fixed-size outputs, growing the region first if need be,
	// where the parent said or after the inputs.
	if cap(res.Outputs) < len(h.outputs) {
		res.Outputs = make([]modelhost.Tensor, len(h.outputs))
	}
	res.Outputs = res.Outputs[:len(h.outputs)]
	placed := len(r.Outputs) == len(h.outputs) && len(r.Outputs) > 0
	if len(r.Outputs) > 0 && !placed {
		return fmt.Errorf("%d outputs placed, the model has %d", len(r.Outputs), len(h.outputs))
	}
	end = modelhost.Align(end)
	for j, spec := range h.outputs {
		o := &res.Outputs[j]
		if placed {
			p := r.Outputs[j]
			if err := checkLength(spec, p); err != nil {
				return err
			}
			o.Shape = append(o.Shape[:0], p.Shape...)
			o.Offset, o.Length = p.Offset, p.Length
			end = max(end, int(p.Offset+p.Length))
			continue
		}
		o.Shape = o.Shape[:0]
		o.Offset, o.Length = 0, h.outputBytes(j, rows)
		if o.Length >= 0 {
			o.Offset = int64(end)
			end = modelhost.Align(end + int(o.Length))
		}
	}
	if err := h.region.Grow(end); err != nil {
		return err
	}
	mem := h.region.Bytes()
	for i, t := range r.Inputs {
		v, err := ort.NewCustomDataTensor(t.Shape, mem[t.Offset:t.Offset+t.Length], ortType(h.inputs[i].DataType))
		if err != nil {
			return fmt.Errorf("input %q: %w", h.inputs[i].Name, err)
		}
		h.ins[i] = v
	}
	for j, spec := range h.outputs {
		o := &res.Outputs[j]
		if o.Length < 0 {
			continue
		}
		shape := o.Shape
		if !placed {
			shape = h.outputShape(j, rows)
		}
		v, err := ort.NewCustomDataTensor(shape, mem[o.Offset:o.Offset+o.Length], ortType(spec.DataType))
		if err != nil {
			return fmt.Errorf("output %q: %w", spec.Name, err)
		}
		h.outs[j] = v
	}
	ran := time.Now()
	res.Input = ran.Sub(start)
	err := h.session.Run(h.ins, h.outs)
	res.Infer = time.Since(ran)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	// The runtime allocated the outputs of dynamic size: copy them in.
	for j, spec := range h.outputs {
		o := &res.Outputs[j]
		if placed {
			continue // o is where the parent put it, its shape the parent's
		}
		if o.Length >= 0 {
			o.Shape = append(o.Shape[:0], h.outs[j].GetShape()...)
			continue
		}
		b, shape, err := valueBytes(h.outs[j], spec)
		if err != nil {
			return err
		}
		o.Shape = append(o.Shape[:0], shape...)
		o.Offset, o.Length = int64(end), int64(len(b))
		end = modelhost.Align(end + len(b))
		if err := h.region.Grow(end); err != nil {
			return err
		}
		copy(h.region.Bytes()[o.Offset:], b)
	}
	return nil
}

// checkLength refuses a tensor whose bytes do not match its shape.
func checkLength(spec TensorSpec, t modelhost.Tensor) error {
	n, err := shapeBytes(spec, t.Shape)
	if err != nil {
		return err
	}
	if n != t.Length {
		return fmt.Errorf("%q: shape %v of %s takes %d bytes, %d given", spec.Name, t.Shape, spec.DataType, n, t.Length)
	}
	return nil
}

// shapeBytes returns the bytes a tensor of spec's type and shape takes,
// or an error naming it when the count overflows.
func shapeBytes(spec TensorSpec, shape []int64) (int64, error) {
	n, err := tensor.ElementsChecked(shape)
	if err == nil {
		n, err = tensor.ByteSize(n, spec.DataType)
	}
	if err != nil {
		return 0, fmt.Errorf("%q: %w", spec.Name, err)
	}
	return n, nil
}

// release destroys the runtime values of the last batch.
func (h *hostSession) release() {
	for _, vs := range [][]ort.Value{h.ins, h.outs} {
		for i, v := range vs {
			if cdt, ok := v.(*ort.CustomDataTensor); v != nil && !(ok && cdt == nil) {
				_ = v.Destroy()
			}
			vs[i] = nil
		}
	}
}

// isAllocationFailure reports whether a runtime error says memory ran out.
func isAllocationFailure(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "bad_alloc") || strings.Contains(m, "failed to allocate") || strings.Contains(m, "out of memory")
}

// ServeHostIfChild serves as a model host and exits when this process was
// started as one; otherwise it returns at once. Test binaries call it
// first in TestMain, since a test binary is what os.Executable names when
// tests load models in hosts.
func ServeHostIfChild() {
	if modelhost.IsHost() {
		os.Exit(ServeHost())
	}
}

// dataSize returns this process's data size in bytes (VmData in
// /proc/self/status: what RLIMIT_DATA counts).
func dataSize() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmData %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmData in /proc/self/status")
}
