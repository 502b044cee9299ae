package core

import (
	"context"
	"fmt"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/runner"
)

// GenParams are one generation request's settings, from any front end.
type GenParams = generate.Params

// Generation is one sequence being generated and turned into text.
type Generation = generate.Session

// StartGeneration queues p on m's generation engine, observed by the
// core's metrics. It fails with runner.ErrInvalidInput when m does not
// generate text, and as generate.Generator.Start does. Call Cancel when
// done with it.
func (s *Core) StartGeneration(ctx context.Context, m *runner.Model, p GenParams) (*Generation, error) {
	g := generate.Of(m)
	if g == nil {
		return nil, fmt.Errorf("%w: model %q does not generate text", runner.ErrInvalidInput, m.Metadata().Name)
	}
	return g.Start(ctx, p, s.observers(m))
}

// observers are m's generation metrics, for a session.
func (s *Core) observers(m *runner.Model) generate.Observers {
	o := s.metrics.forGenerator(m)
	if o == nil {
		return generate.Observers{}
	}
	return generate.Observers{TTFT: o.ttft, ITL: o.itl, PromptTokens: o.promptTokens, OutputTokens: o.outTokens}
}

// inferGenerator answers an infer request (KServe v2 over HTTP, or gRPC
// ModelInfer) on a text generator: text_input in, text_output out.
func (s *Core) inferGenerator(ctx context.Context, g *generate.Generator, m *runner.Model, req *runner.Request) (*runner.Response, error) {
	resp, err := g.Infer(ctx, req, s.observers(m))
	if err != nil {
		return nil, err
	}
	meta := m.Metadata()
	resp.ModelName, resp.ModelVersion = meta.Name, meta.Version
	return resp, nil
}
