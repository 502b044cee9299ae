// Package pipeline serves models that chain other models with built-in
// steps, and routers that send each request to a model chosen by its
// inputs, both declared in a model folder's config.yaml and served like
// any model version (runner.Composite).
//
// A pipeline is a graph of steps over named tensors, as Triton's
// ensembles are: each step is a served model ("model: name" or
// "name:version") or a built-in op (image decoding, resizing, normalising
// and layout; WordPiece tokenization; softmax, top-k with labels, CTC
// greedy decoding, mean pooling, L2 normalisation, reshape), and its
// input_map and output_map connect the step's ports to the pipeline's
// tensors. Steps that need no Python run in the server's process, and a
// model step goes through that model's own admission and dynamic
// batcher, so that concurrent pipeline requests batch at every model.
// The graph is checked when it loads: every tensor made once, every
// input made before it is used, no cycle, datatypes and shapes that fit.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Platform is the platform a pipeline reports in its metadata, as Triton
// reports its ensembles.
const Platform = "ensemble"

// Config is a pipeline block of config.yaml.
type Config struct {
	// Inputs are the tensors a client sends.
	Inputs []PortConfig `yaml:"inputs"`
	// Outputs name the pipeline tensors returned, in order.
	Outputs []string `yaml:"outputs"`
	// Steps are run in an order that makes every tensor before its use;
	// steps that do not need each other's tensors run at the same time.
	Steps []StepConfig `yaml:"steps"`
	// MaxParallelSteps bounds the steps of one request that run at the
	// same time (0: as many as the graph allows; 1: one at a time, in
	// order). Model steps mostly wait on their model's batcher, so the
	// graph's width is the default rather than the cores.
	MaxParallelSteps int `yaml:"max_parallel_steps,omitempty"`
}

// PortConfig declares a pipeline input: shape -1 is any size.
type PortConfig struct {
	Name     string  `yaml:"name"`
	DataType string  `yaml:"datatype"`
	Shape    []int64 `yaml:"shape"`
}

// StepConfig is one step: exactly one of Model and Op.
type StepConfig struct {
	// Name names the step in errors, metrics and Server-Timing: letters,
	// digits, '-' and '_'.
	Name string `yaml:"name"`
	// Model is a served model, "name" (its latest ready version) or
	// "name:version".
	Model string `yaml:"model,omitempty"`
	// Op is a built-in op, and Params its settings.
	Op     string    `yaml:"op,omitempty"`
	Params yaml.Node `yaml:"params,omitempty"`
	// InputMap maps each of the step's inputs to the pipeline tensor it
	// reads; OutputMap each of its outputs used to the tensor it makes.
	InputMap  map[string]string `yaml:"input_map"`
	OutputMap map[string]string `yaml:"output_map"`
}

var stepName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Pipeline is a loaded pipeline version.
type Pipeline struct {
	name    string
	inputs  []runner.TensorSpec
	outputs []runner.TensorSpec
	steps   []*step // in run order
	metrics *stepMetrics
	// source is, by pipeline tensor, the index of the step that makes it
	// (-1: a pipeline input).
	source map[string]int
	// parallel is the number of steps one request may run at once: 1
	// when the steps form a chain.
	parallel int
}

// step is a planned step.
type step struct {
	cfg   StepConfig
	op    op
	want  []string            // the op's outputs that are mapped, sorted
	in    []runner.TensorSpec // per input port (sorted), the planned spec
	ports []string            // input ports, sorted, matching in
	deps  []int               // the steps making its inputs, by index
	model bool
	pre   bool // a built-in step before any model: preprocess, else postprocess
}

var _ runner.Composite = (*Pipeline)(nil)

// Load builds the pipeline that cfg declares, checking its graph against
// the models repo serves now.
func Load(name string, version int64, cfg Config, e env) (*Pipeline, error) {
	p := &Pipeline{name: name}
	made := map[string]runner.TensorSpec{}
	maker := map[string]string{} // tensor -> who makes it, for messages
	if len(cfg.Inputs) == 0 {
		return nil, errors.New("pipeline: no inputs")
	}
	for _, in := range cfg.Inputs {
		dt, ok := tensor.ParseDataType(in.DataType)
		if !ok || in.Name == "" || len(in.Shape) == 0 {
			return nil, fmt.Errorf("pipeline: input %q: want a name, a datatype (FP32, BYTES, ...) and a shape", in.Name)
		}
		if _, dup := made[in.Name]; dup {
			return nil, fmt.Errorf("pipeline: input %q declared twice", in.Name)
		}
		s := runner.TensorSpec{Name: in.Name, DataType: dt, Shape: in.Shape}
		made[in.Name], maker[in.Name] = s, "the pipeline's inputs"
		p.inputs = append(p.inputs, s)
	}
	steps, err := order(cfg.Steps, made)
	if err != nil {
		return nil, err
	}
	seenModel := false
	for _, sc := range steps {
		st, err := plan(sc, e, made, maker)
		if err != nil {
			return nil, fmt.Errorf("pipeline: step %q: %w", sc.Name, err)
		}
		seenModel = seenModel || st.model
		st.pre = !seenModel
		p.steps = append(p.steps, st)
	}
	if len(cfg.Outputs) == 0 {
		return nil, errors.New("pipeline: no outputs")
	}
	for _, o := range cfg.Outputs {
		s, ok := made[o]
		if !ok {
			return nil, fmt.Errorf("pipeline: output %q: no step makes it", o)
		}
		p.outputs = append(p.outputs, s)
	}
	if err := p.planParallel(cfg.MaxParallelSteps); err != nil {
		return nil, err
	}
	p.metrics = newStepMetrics(name, version, p.steps)
	return p, nil
}

// order sorts the steps so that each runs after the steps making its
// inputs (Kahn's algorithm, keeping the written order among equals); it
// fails on a cycle, naming its steps, and on tensors made twice.
func order(steps []StepConfig, inputs map[string]runner.TensorSpec) ([]StepConfig, error) {
	producer := map[string]int{}
	names := map[string]bool{}
	for i, s := range steps {
		if !stepName.MatchString(s.Name) {
			return nil, fmt.Errorf("pipeline: step %d: name %q: want 1 to 64 letters, digits, '-' or '_'", i+1, s.Name)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("pipeline: two steps are called %q", s.Name)
		}
		names[s.Name] = true
		for _, t := range s.OutputMap {
			if _, ok := inputs[t]; ok {
				return nil, fmt.Errorf("pipeline: step %q: output tensor %q is a pipeline input", s.Name, t)
			}
			if j, ok := producer[t]; ok {
				return nil, fmt.Errorf("pipeline: tensor %q is made by both step %q and step %q", t, steps[j].Name, s.Name)
			}
			producer[t] = i
		}
	}
	done := make([]bool, len(steps))
	var out []StepConfig
	for len(out) < len(steps) {
		progressed := false
		for i, s := range steps {
			if done[i] || !ready(s, producer, done) {
				continue
			}
			done[i], progressed = true, true
			out = append(out, s)
		}
		if !progressed {
			var stuck []string
			for i, s := range steps {
				if !done[i] {
					stuck = append(stuck, s.Name)
				}
			}
			return nil, fmt.Errorf("pipeline: steps %s wait on each other's outputs (a cycle)", strings.Join(stuck, ", "))
		}
	}
	return out, nil
}

// ready reports whether every tensor s reads is a pipeline input or made
// by a step already ordered.
func ready(s StepConfig, producer map[string]int, done []bool) bool {
	for _, t := range s.InputMap {
		if j, ok := producer[t]; ok && !done[j] {
			return false
		}
	}
	return true
}

// plan builds sc's op and checks it against the tensors made so far,
// adding its outputs to made.
func plan(sc StepConfig, e env, made map[string]runner.TensorSpec, maker map[string]string) (*step, error) {
	st := &step{cfg: sc}
	var err error
	switch {
	case (sc.Model == "") == (sc.Op == ""):
		return nil, errors.New("give either model or op")
	case sc.Model != "":
		st.model = true
		if st.op, err = newModelOp(sc.Model, e.repo); err != nil {
			return nil, err
		}
	default:
		mk, ok := builtins[sc.Op]
		if !ok {
			return nil, fmt.Errorf("op %q: no such op (want one of %s)", sc.Op, strings.Join(opNames(), ", "))
		}
		if st.op, err = mk(&sc.Params, e); err != nil {
			return nil, fmt.Errorf("op %s: %w", sc.Op, err)
		}
	}
	in := map[string]runner.TensorSpec{}
	for port, t := range sc.InputMap {
		s, ok := made[t]
		if !ok {
			return nil, fmt.Errorf("input %q reads tensor %q, which no step makes and the pipeline does not take", port, t)
		}
		s.Name = port
		in[port] = s
		st.ports = append(st.ports, port)
	}
	slices.Sort(st.ports)
	for _, port := range st.ports {
		st.in = append(st.in, in[port])
	}
	outs, err := st.op.plan(in)
	if err != nil {
		return nil, err
	}
	for port, t := range sc.OutputMap {
		s, ok := outs[port]
		if !ok {
			return nil, fmt.Errorf("output %q: the step has no such output (it has %s)", port, strings.Join(sortedKeys(outs), ", "))
		}
		s.Name = t
		made[t], maker[t] = s, "step "+sc.Name
		st.want = append(st.want, port)
	}
	if len(st.want) == 0 {
		return nil, errors.New("output_map maps none of its outputs")
	}
	slices.Sort(st.want)
	return st, nil
}

func opNames() []string { return sortedKeys(builtins) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Metadata returns the pipeline's inputs and outputs.
func (p *Pipeline) Metadata() runner.Metadata {
	return runner.Metadata{Platform: Platform, Inputs: p.inputs, Outputs: p.outputs}
}

// Close releases nothing: the models the steps call are the repository's.
func (p *Pipeline) Close() {}

// takeInputs checks req's inputs against the pipeline's and puts them in
// tensors.
func (p *Pipeline) takeInputs(req *runner.Request, tensors map[string]tensor.Tensor) error {
	for _, t := range req.Inputs {
		i := slices.IndexFunc(p.inputs, func(s runner.TensorSpec) bool { return s.Name == t.Name })
		if i < 0 {
			return fmt.Errorf("%w: input %q: pipeline %q has no such input", runner.ErrInvalidInput, t.Name, p.name)
		}
		if _, dup := tensors[t.Name]; dup {
			return fmt.Errorf("%w: input %q: given twice", runner.ErrInvalidInput, t.Name)
		}
		if err := check(t, p.inputs[i]); err != nil {
			return fmt.Errorf("%w: input %v", runner.ErrInvalidInput, err)
		}
		tensors[t.Name] = t
	}
	for _, s := range p.inputs {
		if _, ok := tensors[s.Name]; !ok {
			return fmt.Errorf("%w: input %q is missing (pipeline %q takes %d inputs)", runner.ErrInvalidInput, s.Name, p.name, len(p.inputs))
		}
	}
	return nil
}

// run runs the step's op on in, checking what it reads against the plan
// first: a tensor an earlier step made to fit its plan always fits, so a
// mismatch is the client's input passing through.
func (st *step) run(ctx context.Context, in map[string]tensor.Tensor, t *profile.Timing) (map[string]tensor.Tensor, error) {
	for k, port := range st.ports {
		if err := check(in[port], st.in[k]); err != nil {
			return nil, st.fail(fmt.Errorf("%w: input %v", runner.ErrInvalidInput, err))
		}
	}
	out, err := st.op.run(ctx, in, st.want, t)
	if err != nil {
		return nil, st.fail(err)
	}
	return out, nil
}

// fail names the step in err; a built-in op's error that is not already
// classified is the client's input.
func (st *step) fail(err error) error {
	if st.model {
		return fmt.Errorf("step %q (model %s): %w", st.cfg.Name, st.cfg.Model, err)
	}
	if !errors.Is(err, runner.ErrInvalidInput) && !errors.Is(err, runner.ErrTooLarge) {
		err = fmt.Errorf("%w: %v", runner.ErrInvalidInput, err)
	}
	return fmt.Errorf("step %q (op %s): %w", st.cfg.Name, st.cfg.Op, err)
}
