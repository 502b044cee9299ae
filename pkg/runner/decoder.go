package runner

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Decoder is an autoregressive model with an explicit key/value cache:
// each forward pass takes only the new tokens of each sequence, its past
// keys and values, and an attention mask over past and new, and returns
// the logits of each sequence's last new token and either the new tokens'
// keys and values or, as most exported decoders do, the past with the new
// appended:
//
//	input_ids, position_ids INT64 [batch, new]
//	attention_mask          INT64 [batch, past + new]
//	past_key_N, past_value_N FP32 [batch, heads, past, head_dim]
//	-> logits FP32 [batch, vocab]
//	   new_key_N, new_value_N FP32 [batch, heads, new, head_dim]
//	   or present_key_N, present_value_N FP32 [batch, heads, past + new, head_dim]
//
// Returning only the new keys and values saves the model a copy of the
// whole past every step, and the engine reading it back.
type Decoder struct {
	Name            string
	Layers          int
	Heads, HeadDim  int
	Vocab           int
	session         *ort.DynamicAdvancedSession
	device          Device // the device its session runs on
	inputs, outputs []TensorSpec
	mu              sync.Mutex // one forward pass at a time
	// remote, when set, runs the forward passes in a model host
	// (isolation: process) instead of session; health and closing are its.
	remote    *host
	health    *hostHealth
	closing   chan struct{}
	closeOnce sync.Once
	// supervised is closed when the goroutine that replaces a host dead
	// while idle has stopped.
	supervised           chan struct{}
	pastAt, presentAt    []int // index of past/present key (2l) and value (2l+1)
	newOnly              bool  // the present holds the new positions only
	idsAt, posAt, maskAt int
	logitsAt             int
}

var kvName = regexp.MustCompile(`^(past|present|new)_(key|value)_([0-9]+)$`)

// LoadDecoder creates a decoder from ONNX bytes, checking that its inputs
// and outputs are those of a key/value-cached decoder.
func LoadDecoder(name string, onnx []byte, cfg Config) (*Decoder, error) {
	return loadDecoder(name, onnx, cfg, DefaultLoadTimeout)
}

// loadDecoder is LoadDecoder, its model host given loadTimeout to load
// the session (a server's --model-load-timeout).
func loadDecoder(name string, onnx []byte, cfg Config, loadTimeout time.Duration) (*Decoder, error) {
	if LoadedRuntime() == nil {
		return nil, fmt.Errorf("decoder %q: ONNX Runtime is not loaded", name)
	}
	it, err := onnxgraph.ReadInterface(onnx) // not through the runtime: see LoadModel
	if err != nil {
		return nil, fmt.Errorf("decoder %q: %w", name, err)
	}
	d := &Decoder{Name: name, idsAt: -1, posAt: -1, maskAt: -1, logitsAt: -1}
	if d.inputs, err = specsFromPorts(it.Inputs); err != nil {
		return nil, fmt.Errorf("decoder %q: input %w", name, err)
	}
	if d.outputs, err = specsFromPorts(it.Outputs); err != nil {
		return nil, fmt.Errorf("decoder %q: output %w", name, err)
	}
	kv := func(specs []TensorSpec, kind string) ([]int, error) {
		found := map[int]int{}
		for i, s := range specs {
			m := kvName.FindStringSubmatch(s.Name)
			if m == nil || m[1] != kind {
				continue
			}
			l, _ := strconv.Atoi(m[3])
			slot := 2 * l
			if m[2] == "value" {
				slot++
			}
			if s.DataType != tensor.FP32 || len(s.Shape) != 4 || s.Shape[1] < 1 || s.Shape[3] < 1 {
				return nil, fmt.Errorf("%s: want FP32 [batch, heads, positions, head_dim], got %s %v", s.Name, s.DataType, s.Shape)
			}
			if d.Heads == 0 {
				d.Heads, d.HeadDim = int(s.Shape[1]), int(s.Shape[3])
			} else if int(s.Shape[1]) != d.Heads || int(s.Shape[3]) != d.HeadDim {
				return nil, fmt.Errorf("%s: shape %v differs from the other layers'", s.Name, s.Shape)
			}
			found[slot] = i
		}
		if len(found) == 0 || len(found)%2 != 0 {
			return nil, fmt.Errorf("want %s_key_N and %s_value_N for every layer N", kind, kind)
		}
		at := make([]int, len(found))
		for slot := range at {
			i, ok := found[slot]
			if !ok {
				return nil, fmt.Errorf("%s_%s_%d is missing", kind, [2]string{"key", "value"}[slot%2], slot/2)
			}
			at[slot] = i
		}
		return at, nil
	}
	if d.pastAt, err = kv(d.inputs, "past"); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", name, err)
	}
	if d.presentAt, err = kv(d.outputs, "new"); err == nil {
		d.newOnly = true
	} else if d.presentAt, err = kv(d.outputs, "present"); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", name, err)
	}
	if len(d.pastAt) != len(d.presentAt) {
		return nil, fmt.Errorf("decoder %q: %d past and %d present tensors", name, len(d.pastAt), len(d.presentAt))
	}
	d.Layers = len(d.pastAt) / 2
	for i, s := range d.inputs {
		switch s.Name {
		case "input_ids":
			d.idsAt = i
		case "position_ids":
			d.posAt = i
		case "attention_mask":
			d.maskAt = i
		}
	}
	for i, s := range d.outputs {
		if s.Name == "logits" && s.DataType == tensor.FP32 && len(s.Shape) == 2 && s.Shape[1] > 0 {
			d.logitsAt, d.Vocab = i, int(s.Shape[1])
		}
	}
	if d.idsAt < 0 || d.posAt < 0 || d.maskAt < 0 || d.logitsAt < 0 || len(d.inputs) != 3+2*d.Layers || len(d.outputs) != 1+2*d.Layers {
		return nil, fmt.Errorf("decoder %q: want inputs input_ids, position_ids, attention_mask and the past, outputs logits [batch, vocab] and the new or present keys and values", name)
	}
	cfg = cfg.withDefaults(true)
	dev, err := ParseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("decoder %q: %w", name, err)
	}
	meta := Metadata{Name: name, Version: 1, Inputs: d.inputs, Outputs: d.outputs}
	log := slog.With("model", name)
	if cfg.Isolation == IsolationProcess {
		d.health = &hostHealth{limit: DefaultCrashLimit, window: DefaultCrashWindow}
		d.closing = make(chan struct{})
		if d.remote, d.device, err = newHost(meta, onnx, newModelSource(onnx, nil, nil, nil), cfg, dev, d.health, d.closing, log, loadTimeout); err != nil {
			return nil, fmt.Errorf("decoder %q: %w", name, err)
		}
		d.supervised = make(chan struct{})
		go d.supervise(d.remote)
		return d, nil
	}
	if d.session, d.device, err = newSessionOrCPU(onnx, meta, cfg, dev, log); err != nil {
		return nil, fmt.Errorf("decoder %q: %w", name, err)
	}
	return d, nil
}

// supervise replaces h when it dies while no pass runs (the OOM killer,
// kill -9), as a model's workers do: the next pass neither fails nor
// waits for a restart. It stops when the decoder closes.
func (d *Decoder) supervise(h *host) {
	defer close(d.supervised)
	for {
		select {
		case <-d.closing:
			return
		case <-h.dead:
		}
		d.mu.Lock()
		if d.remote != nil {
			_ = d.remote.ready() // a failure is the next pass's error
		}
		d.mu.Unlock()
	}
}

// Close releases the session, or ends the model host: killed first, so
// that a pass hung in it, or a restart loading it, cannot hold Close.
func (d *Decoder) Close() {
	if d.closing != nil {
		d.closeOnce.Do(func() {
			close(d.closing)
			d.remote.kill()
		})
		<-d.supervised
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remote != nil {
		d.remote.close()
		d.remote = nil
	}
	if d.session != nil {
		_ = d.session.Destroy()
		d.session = nil
	}
}

// Device returns the device the decoder's session runs on: the one asked
// for, or the CPU when fallback_to_cpu took it there.
func (d *Decoder) Device() Device { return d.device }

// Hosted reports whether the forward passes run in a model host
// (isolation: process). Its past buffers and results are then views of
// the host's shared memory, valid until the next pass.
func (d *Decoder) Hosted() bool { return d.health != nil }

// Forward is one pass: Batch rows of News new tokens each, after Past
// positions (at least one: a position the mask hides stands in for none).
type Forward struct {
	Batch, News, Past int
	IDs, Pos          []int64     // Batch × News
	Mask              []int64     // Batch × (Past + News)
	KV                [][]float32 // per layer, key then value: Batch × heads × Past × head_dim
}

// ForwardResult is what a pass returns: Logits (batch × vocab), and per
// layer key then value, batch × heads × positions × head_dim, where the
// window of positions is the decoder's PresentWindow.
type ForwardResult struct {
	Logits  []float32
	Present [][]float32
}

// PresentWindow returns the positions a forward pass of news tokens after
// past returns per row, and where in them the first new token is.
func (d *Decoder) PresentWindow(past, news int) (positions, first int) {
	if d.newOnly {
		return news, 0
	}
	return past + news, past
}

// grow returns buf resized to n, reusing its array when it is big enough.
// What it held is left in place: callers overwrite or mask it.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]float32, n, n+n/4)
}

// Run makes one forward pass. With res given, its buffers are reused for
// the outputs (and the returned result is res). It fails with ErrClosed
// after Close, and with a HostDiedError when a model host dies in it.
func (d *Decoder) Run(f *Forward, res ...*ForwardResult) (*ForwardResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remote != nil {
		return d.runHosted(f, res...)
	}
	if d.session == nil {
		return nil, ErrClosed
	}
	ins := make([]ort.Value, len(d.inputs))
	outs := make([]ort.Value, len(d.outputs))
	defer func() {
		for _, v := range append(ins, outs...) {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	b, n, p := int64(f.Batch), int64(f.News), int64(f.Past)
	var err error
	newTensor := func(shape []int64, data []byte, dt tensor.DataType) ort.Value {
		if err != nil {
			return nil
		}
		var v ort.Value
		v, err = ort.NewCustomDataTensor(ort.NewShape(shape...), data, ortType(dt))
		return v
	}
	ins[d.idsAt] = newTensor([]int64{b, n}, asBytes(f.IDs), tensor.Int64)
	ins[d.posAt] = newTensor([]int64{b, n}, asBytes(f.Pos), tensor.Int64)
	ins[d.maskAt] = newTensor([]int64{b, p + n}, asBytes(f.Mask), tensor.Int64)
	h, hd := int64(d.Heads), int64(d.HeadDim)
	for slot, i := range d.pastAt {
		ins[i] = newTensor([]int64{b, h, p, hd}, asBytes(f.KV[slot]), tensor.FP32)
	}
	out := &ForwardResult{}
	if len(res) > 0 && res[0] != nil {
		out = res[0]
	}
	if len(out.Present) != len(d.presentAt) {
		out.Present = make([][]float32, len(d.presentAt))
	}
	out.Logits = grow(out.Logits, f.Batch*d.Vocab)
	outs[d.logitsAt] = newTensor([]int64{b, int64(d.Vocab)}, asBytes(out.Logits), tensor.FP32)
	positions, _ := d.PresentWindow(f.Past, f.News)
	w := int64(positions)
	for slot, i := range d.presentAt {
		out.Present[slot] = grow(out.Present[slot], int(b*h*w*hd))
		outs[i] = newTensor([]int64{b, h, w, hd}, asBytes(out.Present[slot]), tensor.FP32)
	}
	if err != nil {
		return nil, fmt.Errorf("decoder %q: %w", d.Name, err)
	}
	if err := d.session.Run(ins, outs); err != nil {
		return nil, fmt.Errorf("decoder %q: run: %w", d.Name, err)
	}
	return out, nil
}
