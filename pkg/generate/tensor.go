package generate

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Names of a text generator's tensors over the Open Inference Protocol,
// as Triton's TensorRT-LLM and vLLM backends name them.
const (
	TextInput  = "text_input"  // BYTES [n]: the prompts
	TextOutput = "text_output" // BYTES [n]: their generated text
	MaxTokens  = "max_tokens"  // INT32 or INT64 [1], optional
)

// Infer answers a KServe v2 infer request (HTTP or gRPC ModelInfer) on a
// text generator: each element of text_input is a prompt, generated
// greedily to max_tokens (an optional input; the generator's
// default_max_tokens without it), and text_output holds each one's text
// in the same shape. It fails with runner.ErrInvalidInput naming the
// input at fault.
func (g *Generator) Infer(ctx context.Context, req *runner.Request, obs Observers) (*runner.Response, error) {
	start := time.Now()
	var prompts *tensor.Tensor
	var p Params
	for i := range req.Inputs {
		t := &req.Inputs[i]
		switch t.Name {
		case TextInput:
			prompts = t
		case MaxTokens:
			n, err := scalar(*t)
			if err != nil {
				return nil, err
			}
			p.MaxTokens = int(n)
			if p.MaxTokens < 1 {
				return nil, fmt.Errorf("%w: input %q: %d, want at least 1", runner.ErrInvalidInput, MaxTokens, n)
			}
		default:
			return nil, fmt.Errorf("%w: input %q: a text generator takes %q and optionally %q", runner.ErrInvalidInput, t.Name, TextInput, MaxTokens)
		}
	}
	if prompts == nil {
		return nil, fmt.Errorf("%w: input %q is missing", runner.ErrInvalidInput, TextInput)
	}
	if prompts.DataType != tensor.Bytes {
		return nil, fmt.Errorf("%w: input %q: datatype %s, want BYTES", runner.ErrInvalidInput, TextInput, prompts.DataType)
	}
	if err := prompts.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", runner.ErrInvalidInput, err)
	}
	n := int(tensor.Elements(prompts.Shape))
	if n < 1 || n > g.cfg.MaxBatch {
		return nil, fmt.Errorf("%w: input %q: %d prompts, want 1 to %d (the generator's max_batch)", runner.ErrInvalidInput, TextInput, n, g.cfg.MaxBatch)
	}
	for _, name := range req.Outputs {
		if name != TextOutput {
			return nil, fmt.Errorf("%w: output %q: a text generator answers %q", runner.ErrInvalidInput, name, TextOutput)
		}
	}
	texts := make([]string, n)
	data := prompts.Data
	for i := range texts {
		l := binary.LittleEndian.Uint32(data)
		texts[i], data = string(data[4:4+l]), data[4+l:]
	}
	sessions := make([]*Session, n)
	for i, text := range texts {
		q := p
		q.Prompt, q.Seeded = text, true // greedy: the seed is never drawn on
		s, err := g.Start(ctx, q, obs)
		if err != nil {
			for _, s := range sessions[:i] {
				s.Cancel()
			}
			return nil, fmt.Errorf("%s[%d]: %w", TextInput, i, err)
		}
		sessions[i] = s
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			defer s.Cancel()
			errs[i] = s.Drain()
		})
	}
	wg.Wait()
	var out []byte
	for i, s := range sessions {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s[%d]: %w", TextInput, i, errs[i])
		}
		out = tensor.AppendUint(out, uint64(len(s.Text)), 4)
		out = append(out, s.Text...)
	}
	resp := &runner.Response{ID: req.ID, Outputs: []tensor.Tensor{{Name: TextOutput, DataType: tensor.Bytes, Shape: prompts.Shape, Data: out}}}
	resp.Timing.Set(profile.Infer, time.Since(start))
	return resp, nil
}

// scalar reads a one-element integer input.
func scalar(t tensor.Tensor) (int64, error) {
	if tensor.Elements(t.Shape) != 1 {
		return 0, fmt.Errorf("%w: input %q: shape %v, want one element", runner.ErrInvalidInput, t.Name, t.Shape)
	}
	switch t.DataType {
	case tensor.Int32:
		v, err := tensor.Values[int32](t)
		if err != nil || len(v) != 1 {
			return 0, fmt.Errorf("%w: input %q: %v", runner.ErrInvalidInput, t.Name, err)
		}
		return int64(v[0]), nil
	case tensor.Int64:
		v, err := tensor.Values[int64](t)
		if err != nil || len(v) != 1 {
			return 0, fmt.Errorf("%w: input %q: %v", runner.ErrInvalidInput, t.Name, err)
		}
		return v[0], nil
	}
	return 0, fmt.Errorf("%w: input %q: datatype %s, want INT32 or INT64", runner.ErrInvalidInput, t.Name, t.DataType)
}
