package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Infer queues req and waits for its result. It fails at once with
// ErrInvalidInput, ErrQueueFull, ErrClosed or ErrDeadlineExceeded (when
// ctx's deadline has already passed); a request whose deadline passes while
// it is queued is never executed and fails with ErrDeadlineExceeded.
//
// An answered request is shown to the version's quality monitor, when it
// has one, here where its inputs and outputs are both at hand, whatever
// front end it came through: the monitor samples it or not, and copies
// only the sampled ones.
func (m *Model) Infer(ctx context.Context, req *Request) (*Response, error) {
	resp, err := m.serve(ctx, req)
	if m.quality != nil && err == nil {
		m.quality.Observe(req.ID, req.Inputs, resp.Outputs)
	}
	return resp, err
}

// serve is Infer without the quality monitor.
func (m *Model) serve(ctx context.Context, req *Request) (*Response, error) {
	if m.gen != nil {
		return nil, fmt.Errorf("%w: model %q generates text: use /v2/models/%s/generate or /v1/completions", ErrInvalidInput, m.meta.Name, m.meta.Name)
	}
	if reason := m.hosts.downReason(); reason != "" {
		return nil, fmt.Errorf("%w: model %q version %d: %s", ErrModelNotReady, m.meta.Name, m.meta.Version, reason)
	}
	if err := m.checkBytes(req); err != nil {
		return nil, err
	}
	if m.composite != nil {
		return m.serveComposite(ctx, req)
	}
	if m.cache != nil {
		if text, ok := m.byString(req); ok {
			return m.inferStrings(ctx, req, text)
		}
		return m.inferCached(ctx, req)
	}
	return m.inferText(ctx, req)
}

// Admit reports whether the version would take one more request now, for
// a front end to shed a request before it reads its body: ErrQueueFull
// when the queue is at max_queue_size, ErrModelNotReady when the version
// stopped serving. A nil answer promises nothing: Infer decides.
func (m *Model) Admit() error {
	if reason := m.hosts.downReason(); reason != "" {
		return fmt.Errorf("%w: model %q version %d: %s", ErrModelNotReady, m.meta.Name, m.meta.Version, reason)
	}
	if m.admission != nil && m.admission.full() {
		return m.errFull()
	}
	if m.gen == nil && m.batcher.full() {
		return fmt.Errorf("model %q version %d: %w: max_queue_size %d reached (requests queued for a batch)", m.meta.Name, m.meta.Version, ErrQueueFull, m.batcher.maxQueue)
	}
	return nil
}

// checkBytes refuses a request whose inputs exceed the model's bound on
// one request's bytes, before it is hashed, tokenized or queued.
func (m *Model) checkBytes(req *Request) error {
	var n int64
	for _, t := range req.Inputs {
		n += int64(len(t.Data))
	}
	return m.CheckInputBytes(n)
}

// CheckInputBytes refuses n bytes of input data when they pass the
// model's bound on one request's bytes (max_request_bytes, or twice a full
// batch): a front end that knows a body's data size from its framing asks
// before it reads the body. The error wraps ErrTooLarge.
func (m *Model) CheckInputBytes(n int64) error {
	if m.maxRequestBytes <= 0 || n <= m.maxRequestBytes {
		return nil
	}
	if m.cfg.MaxRequestBytes == 0 {
		// The bound is a full batch's: say so in the terms of the batch.
		return fmt.Errorf("%w: the inputs hold %d bytes, more than twice a full batch of model %q (max_batch_size %d rows), %d", ErrTooLarge, n, m.meta.Name, *m.cfg.MaxBatchSize, m.maxRequestBytes)
	}
	return fmt.Errorf("%w: the inputs hold %d bytes, over model %q's max_request_bytes %d", ErrTooLarge, n, m.meta.Name, m.maxRequestBytes)
}

// inferText tokenizes req's text, if it has any, and runs it.
func (m *Model) inferText(ctx context.Context, req *Request) (*Response, error) {
	var tokenizing time.Duration
	if m.text != nil {
		var err error
		if req, tokenizing, _, err = m.text.tokenize(req, *m.cfg.MaxBatchSize); err != nil {
			return nil, err
		}
	}
	resp, err := m.infer(ctx, req)
	if resp != nil {
		resp.Timing.Set(profile.Preprocess, tokenizing)
	}
	return resp, err
}

func (m *Model) infer(ctx context.Context, req *Request) (*Response, error) {
	p, err := m.prepare(req)
	if err != nil {
		return nil, err
	}
	if m.stacked && p.rows == 0 {
		resp, err := m.emptyBatch(p)
		m.putPending(p)
		if resp != nil {
			resp.ID = req.ID
		}
		return resp, err
	}
	now := time.Now()
	p.enqueued, p.place = now, req.Place
	if d, ok := ctx.Deadline(); ok {
		p.deadline = d
	} else if t := time.Duration(m.cfg.DynamicBatching.DefaultTimeout); t > 0 {
		p.deadline = now.Add(t)
	}
	if !p.deadline.IsZero() && !now.Before(p.deadline) {
		m.putPending(p)
		return nil, fmt.Errorf("%w: the deadline passed before the request was queued", ErrDeadlineExceeded)
	}
	if err := m.batcher.submit(p); err != nil {
		m.putPending(p)
		return nil, fmt.Errorf("model %q version %d: %w", m.meta.Name, m.meta.Version, err)
	}
	var r result
	if ctx.Done() == nil {
		r = <-p.done // a context that is never done needs no select
	} else {
		select {
		case r = <-p.done:
		case <-ctx.Done():
			return nil, m.abandon(ctx, p)
		}
	}
	m.putPending(p)
	if r.resp != nil {
		r.resp.ID = req.ID
	} else if errors.Is(r.err, ErrDeadlineExceeded) {
		m.stats.failure.Add(1) // expired in the queue; run counts the rest
	}
	return r.resp, r.err
}

// emptyBatch answers a request of no rows (a batch dimension of 0, as
// Triton serves it) without queueing it or running the model: each output
// it asked for has the model's row shape with no rows, and no data. An
// output whose size past the batch is dynamic, which only a run could
// tell, is refused by name.
func (m *Model) emptyBatch(p *pending) (*Response, error) {
	n := p.outputCount(len(m.meta.Outputs))
	resp := &Response{ModelName: m.meta.Name, ModelVersion: m.meta.Version, Outputs: make([]tensor.Tensor, n)}
	for i := range n {
		o := m.meta.Outputs[p.output(i)]
		shape := append([]int64{0}, o.Shape[1:]...)
		for _, d := range shape[1:] {
			if d < 0 {
				return nil, fmt.Errorf("%w: a batch of no rows: output %q has a dynamic dimension past the batch (%v), which only a run could size", ErrInvalidInput, o.Name, o.Shape)
			}
		}
		resp.Outputs[i] = tensor.Tensor{Name: o.Name, DataType: o.DataType, Shape: shape, Data: []byte{}}
	}
	return resp, nil
}

// abandon withdraws p after ctx ended while the caller waited, and returns
// the caller's error.
func (m *Model) abandon(ctx context.Context, p *pending) error {
	// p stays out of the pool: the batcher or a worker may still hold it.
	p.gone.Store(true)
	if m.batcher.abandon(p) {
		m.stats.failure.Add(1)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrDeadlineExceeded, ctx.Err())
	}
	return ctx.Err()
}

// prepare checks req against the model's inputs and outputs and returns it
// as a pending request, inputs in model order.
func (m *Model) prepare(req *Request) (*pending, error) {
	p, err := m.check(req)
	if err != nil && p != nil {
		m.putPending(p)
		return nil, err
	}
	return p, err
}

// getPending returns a cleared pending request from the model's pool.
func (m *Model) getPending() *pending {
	p, _ := m.pool.Get().(*pending)
	if p == nil {
		p = &pending{inputs: make([]tensor.Tensor, len(m.meta.Inputs)), done: make(chan result, 1)}
	}
	p.rows = 1
	return p
}

// putPending clears p and returns it to the pool. Only a request nothing
// else refers to any more may be returned: one whose result was received,
// or one that was never queued.
func (m *Model) putPending(p *pending) {
	clear(p.inputs)
	*p = pending{inputs: p.inputs, done: p.done}
	m.pool.Put(p)
}

// check does prepare's work; on error it may return the pending request
// it had begun filling, for the pool.
func (m *Model) check(req *Request) (*pending, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
	}
	if len(req.Inputs) != len(m.meta.Inputs) {
		return nil, bad("model %q takes %d inputs, the request has %d", m.meta.Name, len(m.meta.Inputs), len(req.Inputs))
	}
	p := m.getPending()
	for k, t := range req.Inputs {
		i := k // inputs usually come in the model's order: no lookup
		if m.meta.Inputs[k].Name != t.Name {
			var ok bool
			if i, ok = m.inputIdx[t.Name]; !ok {
				return p, bad("input %q: model %q has no such input", t.Name, m.meta.Name)
			}
		}
		if p.inputs[i].Name != "" {
			return p, bad("input %q: given twice", t.Name)
		}
		spec := m.meta.Inputs[i]
		if t.DataType != spec.DataType {
			return p, bad("input %q: datatype %s, the model expects %s", t.Name, t.DataType, spec.DataType)
		}
		if len(t.Shape) != len(spec.Shape) {
			return p, bad("input %q: shape %v has %d dimensions, the model expects %d (%v)", t.Name, t.Shape, len(t.Shape), len(spec.Shape), spec.Shape)
		}
		for j, d := range t.Shape {
			// A dynamic dimension may be 0, as the runtime allows (an empty
			// batch, no detections); a fixed one must be what it says.
			if d < 0 {
				return p, bad("input %q: shape %v: dimension %d is %d, want at least 0", t.Name, t.Shape, j, d)
			}
			if spec.Shape[j] >= 0 && d != spec.Shape[j] {
				return p, bad("input %q: shape %v: dimension %d is %d, the model expects %d (%v)", t.Name, t.Shape, j, d, spec.Shape[j], spec.Shape)
			}
		}
		if err := t.Validate(); err != nil {
			return p, fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		p.inputs[i] = t
	}
	if m.stacked {
		p.rows = p.inputs[0].Shape[0]
		for _, t := range p.inputs[1:] {
			if t.Shape[0] != p.rows {
				return p, bad("inputs %q and %q: batch sizes %d and %d differ", p.inputs[0].Name, t.Name, p.rows, t.Shape[0])
			}
		}
		if limit := int64(*m.cfg.MaxBatchSize); limit > 0 && p.rows > limit {
			return p, bad("batch size %d exceeds the model's max_batch_size %d", p.rows, limit)
		}
	}
	if len(req.Outputs) > 0 {
		p.outputs = make([]int, len(req.Outputs))
		seen := make([]bool, len(m.meta.Outputs))
		for k, name := range req.Outputs {
			j, ok := m.outputIdx[name]
			if !ok {
				for _, u := range m.meta.Unserved {
					if u.Name == name {
						return p, bad("requested output %q of model %q is a %s, which is not served: %s", name, m.meta.Name, u.ONNXType, u.Reason)
					}
				}
				return p, bad("requested output %q: model %q has no such output", name, m.meta.Name)
			}
			if seen[j] {
				return p, bad("requested output %q: asked for twice", name)
			}
			seen[j] = true
			p.outputs[k] = j
		}
	}
	prio := req.Priority
	if prio == 0 {
		prio = m.cfg.DynamicBatching.DefaultPriority
	}
	if prio < 1 || prio > m.cfg.DynamicBatching.PriorityLevels {
		return p, bad("priority %d is outside 1..%d", req.Priority, m.cfg.DynamicBatching.PriorityLevels)
	}
	p.priority = prio - 1
	return p, nil
}
