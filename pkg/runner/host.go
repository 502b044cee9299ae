package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/modelhost"
)

// Isolation modes: where a model version's sessions run.
const (
	// IsolationProcess runs each instance's session in a model host, a
	// child process: a crash in the runtime ends the host, never the server.
	IsolationProcess = "process"
	// IsolationNone runs sessions in the server's own process.
	IsolationNone = "none"
)

// Host supervision defaults: a version whose hosts crash DefaultCrashLimit
// times in a row (no batch answered between them) within
// DefaultCrashWindow stays unavailable until it is loaded again; restarts
// wait from hostBackoffMin, doubling to hostBackoffMax. Crashes with
// answered batches between them, such as poison requests among good ones,
// each fail their own batch and never take the version down.
const (
	DefaultCrashLimit  = 5
	DefaultCrashWindow = time.Minute
	hostBackoffMin     = 50 * time.Millisecond
	hostBackoffMax     = 5 * time.Second
	// hostCauseWait is how long a host whose socket closed is given to
	// finish exiting before it is killed, to learn why it ended.
	hostCauseWait = 2 * time.Second
)

// HostDiedError is the error of a batch whose model host ended while it
// ran the batch: a signal (SIGFPE, SIGSEGV, SIGKILL from the kernel's OOM
// killer), an exit, or going over its memory limit.
type HostDiedError struct {
	Model   string
	Version int64
	Cause   string
	// Hung is set when the host was killed for not answering a batch
	// within resources.execution_timeout, rather than dying under it.
	Hung bool
	// Killed is set when SIGKILL from outside ended it (an operator's
	// kill -9, the kernel's OOM killer), nothing its model did.
	Killed bool
}

func (e *HostDiedError) Error() string {
	return fmt.Sprintf("model host of %s v%d died: %s", e.Model, e.Version, e.Cause)
}

// host is one model host seen from the worker that owns it: the process,
// the region the two share, and the restarts. Only its owner calls it.
type host struct {
	name    string
	version int64
	spec    []byte // the host's JSON spec, for restarts
	model   modelSource
	memory  int64         // resources.memory, in bytes (0: none)
	execute time.Duration // resources.execution_timeout
	health  *hostHealth
	closing <-chan struct{} // closed when the model version is closing
	log     *slog.Logger
	timeout time.Duration // to load

	proc *modelhost.Process // nil while down
	// live is the process started last, from its spawn until it is
	// stopped, loading or serving: for kill and doing, which any goroutine
	// may call.
	live atomic.Pointer[modelhost.Process]
	// state is what the host is doing (hostIdle, hostLoading, hostRunning),
	// for a close that has to kill it to say what it cut.
	state atomic.Int32
	// dead holds a token when a process of this host exited on its own.
	dead   chan struct{}
	region *modelhost.Region
	fails  int // consecutive crashes, for the back-off
	// modelBytes is the model file's size; hash is the SHA-256 state after
	// its bytes that the host reported (hostLoaded.Hash).
	modelBytes int64
	hash       []byte

	msg    []byte
	run    modelhost.Run
	result modelhost.Result
}

// A host's states, as its owner last set them.
const (
	hostIdle = iota
	hostLoading
	hostRunning
)

// newHost starts a host for one session of a model version and loads the
// model in it; it returns the device the host's session uses.
func newHost(meta Metadata, onnx []byte, src modelSource, cfg Config, dev Device, health *hostHealth, closing <-chan struct{}, log *slog.Logger, timeout time.Duration) (*host, Device, error) {
	spec, err := json.Marshal(hostSpec{Library: LoadedRuntime().Path, Name: meta.Name, Version: meta.Version, Inputs: meta.Inputs, Outputs: meta.Outputs,
		Config: cfg, Device: dev.String(), ModelBytes: int64(len(onnx)), ModelFile: src.open != nil, MemoryLimit: int64(cfg.Resources.Memory)})
	if err != nil {
		return nil, Device{}, fmt.Errorf("model host spec: %w", err)
	}
	h := &host{name: meta.Name, version: meta.Version, spec: spec, model: src, memory: int64(cfg.Resources.Memory),
		execute: cfg.Resources.executionTimeout(), dead: make(chan struct{}, 1),
		health: health, closing: closing, log: log, timeout: timeout, modelBytes: int64(len(onnx))}
	if h.region, err = modelhost.NewRegion("infer-"+meta.Name, 0); err != nil {
		return nil, Device{}, err
	}
	health.watch(h, log)
	if src.open != nil {
		onnx = nil // the host reads the file
	}
	used, err := h.start(onnx)
	if err != nil {
		h.region.Close()
		return nil, Device{}, err
	}
	return h, used, nil
}

// start starts a host and loads the model in it: the model file, which
// the host reads, or the bytes onnx, copied into the region.
func (h *host) start(onnx []byte) (Device, error) {
	model, err := h.model.file()
	if err != nil {
		return Device{}, err
	}
	if model != nil {
		defer model.Close() // the host has its own descriptor
	} else {
		if int64(len(onnx)) != h.modelBytes {
			return Device{}, fmt.Errorf("%w (%d bytes now, %d before): load the version again to serve the new file", ErrModelChanged, len(onnx), h.modelBytes)
		}
		if err := h.region.Grow(len(onnx)); err != nil {
			return Device{}, err
		}
		copy(h.region.Bytes(), onnx)
	}
	log := h.log
	dead := h.dead
	var proc *modelhost.Process
	err = spawnLowered(func(env []string, reaped func()) (err error) {
		proc, err = modelhost.Start(h.region, modelhost.Spawn{Model: model, Env: env, Stderr: os.Stderr, Exited: func(pid int, cause string) {
			log.Error("model host exited", "pid", pid, "cause", cause)
			select {
			case dead <- struct{}{}:
			default: // the owner has one to take already
			}
		}, Reaped: reaped})
		return err
	})
	if err != nil {
		return Device{}, err
	}
	// From here kill reaches the host, loading as much as serving: a close
	// never waits out a load.
	h.live.Store(proc)
	h.state.Store(hostLoading)
	defer h.state.Store(hostIdle)
	stop := func() {
		h.live.CompareAndSwap(proc, nil)
		proc.Stop()
	}
	fail := func(err error) (Device, error) {
		stop()
		return Device{}, err
	}
	select {
	case <-h.closing: // closed before this host could be killed
		return fail(ErrClosed)
	default:
	}
	// A host that ended before it read its load message (the send fails)
	// or while it loaded (the socket closes) died loading.
	diedLoading := func() (Device, error) {
		cause := proc.Cause(hostCauseWait)
		killed := proc.KilledFromOutside()
		stop()
		return Device{}, &HostDiedError{Model: h.name, Version: h.version, Cause: cause + " (while loading)", Killed: killed}
	}
	if err := proc.Send(modelhost.AppendLoad(nil, h.spec)); err != nil {
		return diedLoading()
	}
	msg, err := proc.Recv(h.timeout)
	switch {
	case modelhost.IsTimeout(err):
		return fail(fmt.Errorf("model host did not load the model within %s (--model-load-timeout)", h.timeout))
	case errors.Is(err, io.EOF):
		return diedLoading()
	case err != nil:
		return fail(err)
	}
	raw, err := modelhost.LoadedAnswer(msg)
	if err != nil {
		return fail(err)
	}
	var loaded hostLoaded
	if err := json.Unmarshal(raw, &loaded); err != nil {
		return fail(fmt.Errorf("model host's answer: %w", err))
	}
	if loaded.Err != "" {
		stop()
		if strings.Contains(loaded.Err, ErrDeviceUnavailable.Error()) {
			return Device{}, fmt.Errorf("%w: %s", ErrDeviceUnavailable, strings.TrimPrefix(loaded.Err, ErrDeviceUnavailable.Error()+": "))
		}
		if rest, ok := strings.CutPrefix(loaded.Err, ErrModelChanged.Error()); ok {
			return Device{}, fmt.Errorf("%w%s", ErrModelChanged, rest)
		}
		return Device{}, errors.New(loaded.Err)
	}
	used, err := ParseDevice(loaded.Device)
	if err != nil {
		return fail(err)
	}
	sum, err := hashSum(loaded.Hash)
	if err == nil {
		err = h.model.loaded(sum)
	}
	if err != nil {
		return fail(err)
	}
	h.hash = loaded.Hash
	// The host holds its own copy now. Clear the region of the model's
	// bytes, so that it only ever holds zeros and tensors: a decoder's
	// past positions that its mask hides are read but never written, and
	// stray bytes there could be NaNs, which no mask hides. Zero gives
	// their pages back, which both processes' resident memory counted.
	if err := h.region.Zero(len(onnx)); err != nil {
		return fail(err)
	}
	h.proc = proc
	return used, nil
}

// ready brings a dead host back, waiting out the back-off first: one that
// died under a batch, or one that died while idle (the OOM killer's
// victims among them), which is counted as a crash now, so that the batch
// about to run is not blamed for it. A host killed from outside (kill -9,
// the OOM killer), idle or while a restart loads it, is counted but is no
// step toward giving the version up: nothing its model did ended it. It
// fails when the version gave up or is closing.
func (h *host) ready() error {
	if h.proc != nil && h.proc.Exited() {
		cause, killed := h.proc.Cause(0), h.proc.KilledFromOutside()
		h.live.Store(nil)
		h.proc.Stop()
		h.proc = nil
		h.fails++
		if killed {
			h.health.killedIdle()
		} else {
			h.health.crashed(time.Now(), cause, false)
		}
	}
	for h.proc == nil {
		if reason := h.health.downReason(); reason != "" {
			return fmt.Errorf("%w: %s", ErrModelNotReady, reason)
		}
		wait := min(hostBackoffMax, hostBackoffMin<<min(h.fails-1, 10))
		timer := time.NewTimer(wait)
		select {
		case <-h.closing:
			timer.Stop()
			return ErrClosed
		case <-timer.C:
		}
		onnx, err := h.model.bytes()
		if err == nil {
			_, err = h.start(onnx)
		}
		if err != nil {
			h.fails++
			select {
			case <-h.closing: // the close killed the restart: no crash
				return ErrClosed
			default:
			}
			if reason := h.health.downReason(); reason != "" {
				// Another instance's crashes made the version give up while
				// this restart loaded, and stopped it: no crash either.
				return fmt.Errorf("%w: %s", ErrModelNotReady, reason)
			}
			h.log.Error("model host restart failed", "err", err)
			if died := (*HostDiedError)(nil); errors.As(err, &died) && died.Killed {
				h.health.killedIdle()
				continue
			}
			if errors.Is(err, ErrModelChanged) {
				// No retry brings the version's bytes back.
				h.health.giveUp(err.Error())
			}
			h.health.crashed(time.Now(), err.Error(), false)
			continue
		}
		h.health.restarted()
		h.log.Warn("model host restarted", "pid", h.proc.Pid(), "after", wait)
	}
	return nil
}

// died records that the host ended while running a batch and returns the
// batch's error.
func (h *host) died(cause string, memory bool) *HostDiedError {
	if h.memory > 0 && strings.Contains(cause, "out of memory") {
		// The host's own heap met the limit before the runtime did.
		cause, memory = fmt.Sprintf("over resources.memory (%d bytes): %s", h.memory, cause), true
	}
	h.live.Store(nil)
	h.proc.Stop()
	h.proc = nil
	h.fails++
	h.health.crashed(time.Now(), cause, memory)
	h.log.Error("model host died", "cause", cause)
	return &HostDiedError{Model: h.name, Version: h.version, Cause: cause}
}

// layOut sizes the run's inputs, one a shape and byte count, laying them
// out one after the other in the region (growing it first if need be), and
// returns the region's bytes to write them into.
func (h *host) layOut(n int, size func(i int) ([]int64, int)) ([]byte, error) {
	if cap(h.run.Inputs) < n {
		h.run.Inputs = make([]modelhost.Tensor, n)
	}
	h.run.Inputs = h.run.Inputs[:n]
	h.run.Outputs = h.run.Outputs[:0] // the host places them, unless placeOutputs does
	end := 0
	for i := range n {
		shape, bytes := size(i)
		h.run.Inputs[i] = modelhost.Tensor{Shape: shape, Offset: int64(end), Length: int64(bytes)}
		end = modelhost.Align(end + bytes)
	}
	if err := h.region.Grow(end); err != nil {
		return nil, err
	}
	return h.region.Bytes(), nil
}

// placeOutputs lays the run's n outputs out after its inputs, for a
// caller that knows every output's shape: the runtime then writes each
// straight into the region. It returns the region's bytes.
func (h *host) placeOutputs(n int, size func(j int) ([]int64, int)) ([]byte, error) {
	end := 0
	if k := len(h.run.Inputs); k > 0 {
		last := h.run.Inputs[k-1]
		end = modelhost.Align(int(last.Offset + last.Length))
	}
	if cap(h.run.Outputs) < n {
		h.run.Outputs = make([]modelhost.Tensor, n)
	}
	h.run.Outputs = h.run.Outputs[:n]
	for j := range n {
		shape, bytes := size(j)
		h.run.Outputs[j] = modelhost.Tensor{Shape: shape, Offset: int64(end), Length: int64(bytes)}
		end = modelhost.Align(end + bytes)
	}
	if err := h.region.Grow(end); err != nil {
		return nil, err
	}
	return h.region.Bytes(), nil
}

// exchange runs the inputs laid out in the region and waits for the
// result: an error when the host died under the batch (a HostDiedError)
// or the runtime refused it.
func (h *host) exchange() error {
	h.run.RegionSize = int64(h.region.Size())
	h.msg = modelhost.AppendRun(h.msg[:0], &h.run)
	h.state.Store(hostRunning)
	defer h.state.Store(hostIdle)
	if err := h.proc.Send(h.msg); err != nil {
		return h.died(h.proc.Cause(hostCauseWait), false)
	}
	msg, err := h.proc.Recv(h.execute)
	if modelhost.IsTimeout(err) {
		died := h.died(fmt.Sprintf("did not answer a batch within resources.execution_timeout %s: taken for hung and killed", h.execute), false)
		died.Hung = true
		return died
	}
	if err != nil {
		return h.died(h.proc.Cause(hostCauseWait), false)
	}
	if err := modelhost.DecodeResult(msg, &h.result); err != nil {
		return h.died(fmt.Sprintf("answered a malformed result: %v", err), false)
	}
	if e := h.result.Err; e != "" {
		if strings.HasPrefix(e, memoryFault) {
			return h.died(fmt.Sprintf("over resources.memory (%d bytes): %s", h.memory, strings.TrimPrefix(e, memoryFault)), true)
		}
		return errors.New(e)
	}
	h.fails = 0
	h.health.answered()
	return h.region.Remap(int(h.result.RegionSize))
}

// kill ends the host now, from any goroutine: its owner then sees it die.
func (h *host) kill() {
	if p := h.live.Load(); p != nil {
		p.Abort()
	}
}

// doing reports what the host is doing now (hostIdle when it has no
// process), from any goroutine.
func (h *host) doing() int32 {
	if h.live.Load() == nil {
		return hostIdle
	}
	return h.state.Load()
}

// stop ends the host's process, if it has one, as its owner's decision:
// no crash is counted, and no restart follows until ready is called.
func (h *host) stop() {
	h.live.Store(nil)
	if h.proc != nil {
		lowerForExit(h.proc.Pid())
		h.proc.Stop()
		h.proc = nil
	}
}

func (h *host) close() {
	h.stop()
	h.region.Close()
	// A closed version can stay referenced a while (the core's per-version
	// maps forget it at their next insert): its weights must not stay
	// with it, or unloading would not give their memory back.
	h.model = modelSource{}
}
