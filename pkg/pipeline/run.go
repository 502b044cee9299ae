package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// planParallel notes each step's producers and how many steps of one
// request may run at once: one when the steps form a chain (every step
// needs the one before), else the most that share a level of the graph,
// at most limit (0: no limit but the graph's).
func (p *Pipeline) planParallel(limit int) error {
	if limit < 0 {
		return fmt.Errorf("pipeline: max_parallel_steps %d: want 0 (as many as the graph allows) or more", limit)
	}
	if limit == 0 {
		limit = len(p.steps)
	}
	p.source = map[string]int{}
	for _, in := range p.inputs {
		p.source[in.Name] = -1
	}
	// A step's level is one more than its producers' highest: the steps
	// form a chain exactly when no two share a level.
	level := make([]int, len(p.steps))
	width := map[int]int{}
	for i, st := range p.steps {
		for _, port := range st.ports {
			if j := p.source[st.cfg.InputMap[port]]; j >= 0 && !slices.Contains(st.deps, j) {
				st.deps = append(st.deps, j)
				level[i] = max(level[i], level[j]+1)
			}
		}
		width[level[i]]++
		for _, t := range st.cfg.OutputMap {
			p.source[t] = i
		}
	}
	p.parallel = 1
	for _, w := range width {
		p.parallel = max(p.parallel, min(w, limit))
	}
	return nil
}

// stepRun is what one step of a request made.
type stepRun struct {
	out map[string]tensor.Tensor // by pipeline tensor
	d   time.Duration
	own profile.Timing // a model step's queue time and batch
}

// Infer runs req through the steps, each once the steps making its inputs
// are done: one after another when they form a chain, else as many at
// once as the graph allows, up to max_parallel_steps. A bad tensor at a
// step is a runner.ErrInvalidInput naming the step; the first step to
// fail stops the others. The response's timing holds each step's
// duration, in plan order, the model steps' queue and infer time summed,
// and the built-in steps' time as preprocess (before the first model
// step) or postprocess (after it); steps that ran at the same time are
// each counted whole.
func (p *Pipeline) Infer(ctx context.Context, req *runner.Request) (*runner.Response, error) {
	inputs := make(map[string]tensor.Tensor, len(p.inputs))
	if err := p.takeInputs(req, inputs); err != nil {
		return nil, err
	}
	runs := make([]stepRun, len(p.steps))
	read := func(t string) tensor.Tensor {
		if i := p.source[t]; i >= 0 {
			return runs[i].out[t]
		}
		return inputs[t]
	}
	var err error
	if p.parallel <= 1 {
		for i := range p.steps {
			if runs[i], err = p.runStep(ctx, i, read); err != nil {
				return nil, err
			}
		}
	} else if err = p.runParallel(ctx, runs, read); err != nil {
		return nil, err
	}
	resp := &runner.Response{Timing: profile.Timing{Steps: make([]profile.Step, 0, len(p.steps))}}
	for i, st := range p.steps {
		r := runs[i]
		resp.Timing.Steps = append(resp.Timing.Steps, profile.Step{Name: st.cfg.Name, Duration: r.d})
		switch {
		case st.model:
			resp.Timing.Add(profile.Queue, r.own.Get(profile.Queue))
			resp.Timing.Add(profile.Infer, r.d-r.own.Get(profile.Queue))
			resp.Timing.BatchSize = max(resp.Timing.BatchSize, r.own.BatchSize)
		case st.pre:
			resp.Timing.Add(profile.Preprocess, r.d)
		default:
			resp.Timing.Add(profile.Postprocess, r.d)
		}
	}
	resp.Outputs = make([]tensor.Tensor, 0, len(p.outputs))
	if len(req.Outputs) == 0 {
		for _, o := range p.outputs {
			resp.Outputs = append(resp.Outputs, read(o.Name))
		}
		return resp, nil
	}
	for _, name := range req.Outputs {
		if !slices.ContainsFunc(p.outputs, func(s runner.TensorSpec) bool { return s.Name == name }) {
			return nil, fmt.Errorf("%w: requested output %q: pipeline %q has no such output", runner.ErrInvalidInput, name, p.name)
		}
		resp.Outputs = append(resp.Outputs, read(name))
	}
	return resp, nil
}

// runStep runs step i on the tensors read returns, and counts it.
func (p *Pipeline) runStep(ctx context.Context, i int, read func(string) tensor.Tensor) (stepRun, error) {
	st := p.steps[i]
	in := make(map[string]tensor.Tensor, len(st.ports))
	for _, port := range st.ports {
		t := read(st.cfg.InputMap[port])
		t.Name = port
		in[port] = t
	}
	var r stepRun
	start := time.Now()
	out, err := st.run(ctx, in, &r.own)
	r.d = time.Since(start)
	if err != nil && errors.Is(context.Cause(ctx), errSiblingFailed) {
		return r, err // stopped by another step's failure: not this step's
	}
	p.metrics.observe(i, r.d, err)
	if err != nil {
		return r, err
	}
	r.out = make(map[string]tensor.Tensor, len(st.cfg.OutputMap))
	for port, t := range st.cfg.OutputMap {
		o := out[port]
		o.Name = t
		r.out[t] = o
	}
	return r, nil
}

// errSiblingFailed cancels the steps of a request one of whose steps
// failed.
var errSiblingFailed = errors.New("another step of the request failed")

// runParallel runs every step in a goroutine of its own that waits for
// its producers, then for one of p.parallel slots; the first failure
// cancels the rest, and every goroutine has ended when it returns.
func (p *Pipeline) runParallel(ctx context.Context, runs []stepRun, read func(string) tensor.Tensor) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make([]chan struct{}, len(p.steps))
	for i := range done {
		done[i] = make(chan struct{})
	}
	slots := make(chan struct{}, p.parallel)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel(errSiblingFailed) })
	}
	for i, st := range p.steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, j := range st.deps {
				select {
				case <-done[j]:
				case <-ctx.Done():
					return
				}
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			r, err := p.runStep(ctx, i, read)
			<-slots
			if err != nil {
				fail(err)
				return
			}
			runs[i] = r
			close(done[i])
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// Every step closed its channel, unless the caller's context ended.
	return context.Cause(ctx)
}
