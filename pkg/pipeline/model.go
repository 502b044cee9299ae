package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// modelRef names a served model: a version, or 0 for the latest ready one.
type modelRef struct {
	name    string
	version int64
}

func parseRef(s string) (modelRef, error) {
	name, v, versioned := strings.Cut(s, ":")
	ref := modelRef{name: name}
	if err := runner.ValidModelName(name); err != nil {
		return ref, fmt.Errorf("model %q: %w", s, err)
	}
	if versioned {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return ref, fmt.Errorf("model %q: version %q is not a positive integer", s, v)
		}
		ref.version = n
	}
	return ref, nil
}

func (r modelRef) String() string {
	if r.version == 0 {
		return r.name
	}
	return r.name + ":" + strconv.FormatInt(r.version, 10)
}

// call runs req on the model ref names, through its admission, queue and
// batcher, as a request from a front end would: it waits (bounded by ctx)
// for a version that loads on demand, then for its admission.
func (r modelRef) call(ctx context.Context, repo *runner.Repository, req *runner.Request) (*runner.Response, error) {
	m, err := repo.Acquire(ctx, r.name, r.version)
	if err != nil {
		return nil, err
	}
	place := new(runner.Place)
	if _, err := m.Enter(ctx, place); err != nil {
		return nil, err
	}
	defer place.Leave()
	in := *req
	in.Place = place
	return m.Infer(ctx, &in)
}

// modelOp is a step that runs a served model. Its ports are the model's
// inputs and outputs as clients see them; a text model's graph inputs
// (token ids and mask) may be mapped instead of its text.
type modelOp struct {
	ref  modelRef
	repo *runner.Repository
}

func newModelOp(s string, repo *runner.Repository) (*modelOp, error) {
	ref, err := parseRef(s)
	if err != nil {
		return nil, err
	}
	return &modelOp{ref: ref, repo: repo}, nil
}

func (o *modelOp) plan(in map[string]runner.TensorSpec) (map[string]runner.TensorSpec, error) {
	m, err := o.repo.Model(o.ref.name, o.ref.version)
	if err != nil {
		return nil, fmt.Errorf("%w (a pipeline loads after the models it calls: load %s first)", err, o.ref)
	}
	served, graph := m.Metadata(), m.GraphMetadata()
	err = fits(in, served.Inputs)
	if err != nil && len(graph.Inputs) != len(served.Inputs) {
		if fits(in, graph.Inputs) == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", o.ref, err)
	}
	out := map[string]runner.TensorSpec{}
	for _, s := range served.Outputs {
		out[s.Name] = s
	}
	return out, nil
}

// fits checks that in maps exactly the inputs specs names, each with a
// datatype and shape that can meet it.
func fits(in map[string]runner.TensorSpec, specs []runner.TensorSpec) error {
	if len(in) != len(specs) {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		return fmt.Errorf("the model takes %d inputs (%s); the step maps %d", len(specs), strings.Join(names, ", "), len(in))
	}
	for _, s := range specs {
		got, ok := in[s.Name]
		if !ok {
			return fmt.Errorf("input %q is not mapped", s.Name)
		}
		if got.DataType != s.DataType {
			return fmt.Errorf("input %q: the tensor mapped to it is %s, the model takes %s", s.Name, got.DataType, s.DataType)
		}
		if len(got.Shape) != len(s.Shape) {
			return fmt.Errorf("input %q: the tensor mapped to it has shape %v, the model takes %v", s.Name, got.Shape, s.Shape)
		}
		for i, d := range got.Shape {
			if d >= 0 && s.Shape[i] >= 0 && d != s.Shape[i] {
				return fmt.Errorf("input %q: the tensor mapped to it has shape %v, the model takes %v", s.Name, got.Shape, s.Shape)
			}
		}
	}
	return nil
}

func (o *modelOp) run(ctx context.Context, in map[string]tensor.Tensor, want []string, t *profile.Timing) (map[string]tensor.Tensor, error) {
	req := &runner.Request{Inputs: make([]tensor.Tensor, 0, len(in)), Outputs: want}
	for _, x := range in {
		req.Inputs = append(req.Inputs, x)
	}
	resp, err := o.ref.call(ctx, o.repo, req)
	if err != nil {
		return nil, err
	}
	t.Set(profile.Queue, resp.Timing.Get(profile.Queue))
	t.BatchSize = resp.Timing.BatchSize
	out := make(map[string]tensor.Tensor, len(want))
	for i, name := range want {
		out[name] = resp.Outputs[i]
	}
	return out, nil
}
