package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

// GenParams are one generation request's settings, from any endpoint.
type GenParams struct {
	Prompt string
	// MaxTokens bounds the output, in tokens (0: the generator's
	// default_max_tokens).
	MaxTokens   int
	Temperature float64
	TopP        float64
	TopK        int
	Seed        uint64
	Seeded      bool // Seed was given; else a random one
	// Stop strings end the output where one first appears (it is left
	// out).
	Stop []string
	// Stream and IncludeUsage say how the front end answers: token by
	// token, with a last event of token counts.
	Stream       bool
	IncludeUsage bool
}

// Generation is one sequence being generated and turned into text.
type Generation struct {
	g      *runner.Generator
	cancel context.CancelFunc
	ch     <-chan runner.Token
	p      GenParams
	ids    []int64
	// Text is the output decoded so far, up to any stop string.
	Text string
	// PromptTokens and CachedTokens count the prompt's tokens, and those
	// of them the prefix cache held.
	PromptTokens, CachedTokens int
	start                      time.Time
	encoded                    time.Duration // tokenizing the prompt
	decoded                    time.Duration // detokenizing the output
	first                      time.Duration // to the first token
	last                       time.Time
	// Finish says why the sequence ended ("stop", "length"), once it has.
	Finish  string
	metrics *genObservers
}

// StartGeneration tokenizes p's prompt and queues it on m's generator.
// It fails with runner.ErrInvalidInput for settings out of range or a
// prompt of no tokens or too many. Call Cancel when done with it.
func (s *Core) StartGeneration(ctx context.Context, m *runner.Model, p GenParams) (*Generation, error) {
	g := m.Generator()
	if g == nil {
		return nil, fmt.Errorf("%w: model %q does not generate text", runner.ErrInvalidInput, m.Metadata().Name)
	}
	if p.MaxTokens == 0 {
		p.MaxTokens = g.Config().DefaultMaxTokens
	}
	if p.MaxTokens < 0 {
		return nil, fmt.Errorf("%w: max_tokens %d, want at least 1", runner.ErrInvalidInput, p.MaxTokens)
	}
	if p.Temperature < 0 || p.Temperature > 10 || p.TopP < 0 || p.TopP > 1 || p.TopK < 0 {
		return nil, fmt.Errorf("%w: temperature %v, top_p %v, top_k %d: want temperature in [0, 10], top_p in [0, 1], top_k of 0 or more", runner.ErrInvalidInput, p.Temperature, p.TopP, p.TopK)
	}
	if !p.Seeded {
		p.Seed = rand.Uint64()
	}
	start := time.Now()
	ids := g.Encode(p.Prompt)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: the prompt has no tokens", runner.ErrInvalidInput)
	}
	encoded := time.Since(start)
	ctx, cancel := context.WithCancel(ctx)
	ch, err := g.Generate(ctx, runner.GenerateRequest{Prompt: ids, MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, Seed: p.Seed})
	if err != nil {
		cancel()
		if errors.Is(err, runner.ErrTooLong) {
			err = fmt.Errorf("%w: %v", runner.ErrInvalidInput, err)
		}
		return nil, err
	}
	return &Generation{g: g, cancel: cancel, ch: ch, p: p, PromptTokens: len(ids), start: start, encoded: encoded, last: start,
		metrics: s.metrics.forGenerator(m)}, nil
}

// Next waits for the next token and returns the text it adds; done is
// true once the sequence has ended (Finish then says why).
func (gen *Generation) Next() (delta string, done bool, err error) {
	tok, ok := <-gen.ch
	if !ok {
		return "", true, nil
	}
	now := time.Now()
	if tok.Err != nil {
		gen.cancel()
		return "", true, tok.Err
	}
	if len(gen.ids) == 0 {
		gen.first = now.Sub(gen.start)
		gen.CachedTokens = tok.CachedTokens
		gen.metrics.ttft.Observe(gen.first.Seconds())
	} else {
		gen.metrics.itl.Observe(now.Sub(gen.last).Seconds())
	}
	gen.last = now
	gen.metrics.outTokens.Inc()
	gen.ids = append(gen.ids, tok.ID)
	began := time.Now()
	full := gen.g.Decode(gen.ids)
	gen.decoded += time.Since(began)
	if tok.Finish == "stop" || tok.ID < 0 {
		full = gen.Text // the end token has no text
	}
	for _, stop := range gen.p.Stop {
		if i := strings.Index(full, stop); stop != "" && i >= 0 {
			full, tok.Finish = full[:i], "stop"
		}
	}
	if len(full) >= len(gen.Text) && strings.HasPrefix(full, gen.Text) {
		delta = full[len(gen.Text):]
	}
	gen.Text = full
	if tok.Finish != "" {
		gen.Finish = tok.Finish
		gen.cancel()
		gen.metrics.promptTokens.Add(float64(gen.PromptTokens))
		return delta, true, nil
	}
	return delta, false, nil
}

// Drain runs the generation to its end.
func (gen *Generation) Drain() error {
	for {
		_, done, err := gen.Next()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// ServerTiming describes a generation's phases as a Server-Timing
// header's value, durations in milliseconds.
func (gen *Generation) ServerTiming() string {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
	}
	total := time.Since(gen.start)
	return fmt.Sprintf("tokenize;dur=%s, ttft;dur=%s, infer;dur=%s, detokenize;dur=%s, total;dur=%s",
		ms(gen.encoded), ms(gen.first), ms(total-gen.encoded-gen.decoded), ms(gen.decoded), ms(total))
}

// Cancel stops the generation, if it still runs, and frees its slot.
func (gen *Generation) Cancel() { gen.cancel() }

// OutputTokens counts the tokens generated so far.
func (gen *Generation) OutputTokens() int { return len(gen.ids) }
