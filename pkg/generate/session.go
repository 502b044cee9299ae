package generate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
)

// MaxStops is how many stop sequences a request may give (OpenAI's
// bound).
const MaxStops = 4

// Params are one generation request's settings, from any front end.
type Params struct {
	// Prompt is the text to continue; PromptIDs, when set, are its token
	// ids instead.
	Prompt    string
	PromptIDs []int64
	// MaxTokens bounds the output, in tokens (0: the generator's
	// default_max_tokens).
	MaxTokens   int
	Temperature float64
	TopP        float64
	TopK        int
	Seed        uint64
	Seeded      bool // Seed was given; else a random one
	// Stop strings end the output where one first appears (it is left
	// out); at most MaxStops.
	Stop []string
	// Logprobs asks for each output token's log-probability and its
	// TopLogprobs most likely alternatives (0 to MaxTopLogprobs).
	Logprobs    bool
	TopLogprobs int
	// LogitBias is added to the logits of its token ids before sampling
	// (OpenAI's logit_bias, -100 to 100).
	LogitBias map[int64]float32
	// PresencePenalty and FrequencyPenalty lower the logits of tokens
	// already generated: once, and once per time (-2 to 2).
	PresencePenalty, FrequencyPenalty float64
	// Stream and IncludeUsage say how the front end answers: token by
	// token, with a last event of token counts.
	Stream       bool
	IncludeUsage bool
	// Group is the client request the session is one sequence of
	// (GenerateRequest.Group).
	Group uint64
}

// Observers receive a session's measurements; any may be nil. The core
// gives its Prometheus histograms and counters.
type Observers struct {
	TTFT, ITL                  interface{ Observe(float64) } // in seconds
	PromptTokens, OutputTokens interface{ Add(float64) }
}

// Session is one sequence being generated and turned into text: tokens
// come from the engine, the detokenizer makes them text, and stop
// sequences end it. What Next returns, joined, is Text: streamed and
// whole answers are the same text by construction.
type Session struct {
	g      *Generator
	cancel context.CancelFunc
	stream *Stream
	p      Params
	stops  stops
	detok  *detokenizer
	ids    []int64
	// Prompt are the prompt's token ids.
	Prompt []int64
	// text is the output decoded so far, cut at any stop sequence; Text
	// is the part of it released (all of it once the session ends).
	text string
	Text string
	// Logprobs are the output tokens' log-probabilities, when asked for;
	// fresh counts those Next has not yet handed out.
	Logprobs []TokenLogprobs
	fresh    int
	// PromptTokens and CachedTokens count the prompt's tokens, and those
	// of them the prefix cache held.
	PromptTokens, CachedTokens int
	start                      time.Time
	encoded                    time.Duration // tokenizing the prompt
	decoded                    time.Duration // detokenizing the output
	first                      time.Duration // to the first token
	last                       time.Time
	// Finish says why the sequence ended ("stop", "length"), once it has.
	Finish string
	obs    Observers
}

// TokenLogprobs are one output token's text, log-probability and most
// likely alternatives.
type TokenLogprobs struct {
	Token   string
	Logprob float32
	Top     []Alternative
}

// Alternative is one of the most likely tokens at a position.
type Alternative struct {
	Token   string
	Logprob float32
}

// Start checks p, tokenizes its prompt and queues it on the engine. It
// fails with runner.ErrInvalidInput, naming the setting, for settings out
// of range or a prompt of no tokens or too many. Call Cancel when done.
func (g *Generator) Start(ctx context.Context, p Params, obs Observers) (*Session, error) {
	if p.MaxTokens == 0 {
		p.MaxTokens = g.cfg.DefaultMaxTokens
	}
	if err := p.check(g.tok.Size()); err != nil {
		return nil, err
	}
	if !p.Seeded {
		p.Seed = rand.Uint64()
	}
	start := time.Now()
	ids := p.PromptIDs
	if ids == nil {
		// Counted exactly up to a few times the bound, then no further: a
		// prompt of tens of megabytes would otherwise cost seconds of CPU
		// only to be refused.
		var more bool
		if ids, more = g.tok.EncodeTextUpTo(nil, p.Prompt, 4*g.maxPrompt); more {
			return nil, fmt.Errorf("%w: prompt: over %d tokens (counting stopped there), more than the model's tokenizer.max_length of %d", runner.ErrInvalidInput, 4*g.maxPrompt, g.maxPrompt)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: prompt: it has no tokens", runner.ErrInvalidInput)
	}
	if len(ids) > g.maxPrompt {
		return nil, fmt.Errorf("%w: prompt: %d tokens, more than the model's tokenizer.max_length of %d", runner.ErrInvalidInput, len(ids), g.maxPrompt)
	}
	encoded := time.Since(start)
	ctx, cancel := context.WithCancel(ctx)
	stream, err := g.Generate(ctx, GenerateRequest{Prompt: ids, MaxTokens: p.MaxTokens, Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, Seed: p.Seed,
		Logprobs: p.Logprobs, TopLogprobs: p.TopLogprobs, LogitBias: p.LogitBias, PresencePenalty: p.PresencePenalty, FrequencyPenalty: p.FrequencyPenalty,
		Group: p.Group})
	if err != nil {
		cancel()
		if errors.Is(err, ErrTooLong) { // the prompt fits (maxPrompt): the tokens asked for do not
			err = fmt.Errorf("%w: max_tokens: %v", runner.ErrInvalidInput, err)
		}
		return nil, err
	}
	return &Session{g: g, cancel: cancel, stream: stream, p: p, stops: p.Stop, detok: newDetokenizer(g.Decode, ids), Prompt: ids,
		PromptTokens: len(ids), start: start, encoded: encoded, last: start, obs: obs}, nil
}

// check validates p's settings against a vocabulary of vocab tokens,
// naming the field at fault.
func (p Params) check(vocab int) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{runner.ErrInvalidInput}, a...)...)
	}
	switch {
	case p.MaxTokens < 0:
		return bad("max_tokens %d, want at least 1", p.MaxTokens)
	case p.Temperature < 0 || p.Temperature > 10:
		return bad("temperature %v, want 0 to 10", p.Temperature)
	case p.TopP < 0 || p.TopP > 1:
		return bad("top_p %v, want 0 to 1", p.TopP)
	case p.TopK < 0:
		return bad("top_k %d, want 0 (all) or more", p.TopK)
	case len(p.Stop) > MaxStops:
		return bad("stop: %d sequences, want at most %d", len(p.Stop), MaxStops)
	case p.TopLogprobs < 0 || p.TopLogprobs > MaxTopLogprobs:
		return bad("top_logprobs %d, want 0 to %d", p.TopLogprobs, MaxTopLogprobs)
	case p.TopLogprobs > 0 && !p.Logprobs:
		return bad("top_logprobs needs logprobs")
	case p.PresencePenalty < -2 || p.PresencePenalty > 2:
		return bad("presence_penalty %v, want -2 to 2", p.PresencePenalty)
	case p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2:
		return bad("frequency_penalty %v, want -2 to 2", p.FrequencyPenalty)
	}
	for _, s := range p.Stop {
		if s == "" {
			return bad("stop: an empty sequence")
		}
	}
	for id, b := range p.LogitBias {
		if id < 0 || id >= int64(vocab) {
			return bad("logit_bias: token %d is outside the vocabulary of %d", id, vocab)
		}
		if b < -100 || b > 100 {
			return bad("logit_bias: %v for token %d, want -100 to 100", b, id)
		}
	}
	for _, id := range p.PromptIDs {
		if id < 0 || id >= int64(vocab) {
			return bad("prompt: token %d is outside the vocabulary of %d", id, vocab)
		}
	}
	return nil
}

// Next waits for the next token and returns the text it releases: none
// while the text could still turn into a stop sequence, or ends in part
// of a character. done is true once the sequence has ended (Finish then
// says why, and every byte of the output has been returned).
func (s *Session) Next() (delta string, done bool, err error) {
	tok, ok := s.stream.Next()
	if !ok {
		return "", true, nil
	}
	now := time.Now()
	if tok.Err != nil {
		s.cancel()
		return "", true, tok.Err
	}
	if len(s.ids) == 0 {
		s.first = now.Sub(s.start)
		s.CachedTokens = tok.CachedTokens
		observe(s.obs.TTFT, s.first)
	} else {
		observe(s.obs.ITL, now.Sub(s.last))
	}
	s.last = now
	if s.obs.OutputTokens != nil {
		s.obs.OutputTokens.Add(1)
	}
	s.ids = append(s.ids, tok.ID)
	began := time.Now()
	var lp TokenLogprobs
	if s.p.Logprobs {
		lp = s.logprobs(tok)
	}
	if tok.Finish != "stop" { // the end of sequence token has no text
		piece := s.detok.add(tok.ID)
		s.text += piece
		lp.Token = piece
	}
	if s.p.Logprobs {
		s.Logprobs = append(s.Logprobs, lp)
	}
	s.decoded += time.Since(began)
	if end, found := s.stops.cut(s.text); found {
		s.text, tok.Finish = s.text[:end], "stop"
	}
	release := len(s.text)
	if tok.Finish == "" {
		release = s.stops.safe(s.text)
	}
	delta = s.text[len(s.Text):release]
	s.Text = s.text[:release]
	if tok.Finish != "" {
		s.Finish = tok.Finish
		s.cancel()
		if s.obs.PromptTokens != nil {
			s.obs.PromptTokens.Add(float64(s.PromptTokens))
		}
		return delta, true, nil
	}
	return delta, false, nil
}

// logprobs reads a token's log-probabilities, before the token is added
// to the text. Each alternative's text is what it would have added to
// the text there (its spacing included, as the chosen token's is): the
// chosen token's text, which Next sets, is what it added, so that the
// tokens' texts joined are the output's text, as OpenAI's are.
func (s *Session) logprobs(tok Token) TokenLogprobs {
	out := TokenLogprobs{Logprob: tok.Logprob}
	for _, a := range tok.Top {
		out.Top = append(out.Top, Alternative{Token: s.detok.peek(a.ID), Logprob: a.Logprob})
	}
	return out
}

// FreshLogprobs returns the log-probabilities of the tokens made since it
// was last called, for a streamed chunk.
func (s *Session) FreshLogprobs() []TokenLogprobs {
	out := s.Logprobs[s.fresh:]
	s.fresh = len(s.Logprobs)
	return out
}

func observe(o interface{ Observe(float64) }, d time.Duration) {
	if o != nil {
		o.Observe(d.Seconds())
	}
}

// Drain runs the generation to its end.
func (s *Session) Drain() error {
	for {
		_, done, err := s.Next()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// ServerTiming describes a generation's phases as a Server-Timing
// header's value, durations in milliseconds, in the latency budget's
// vocabulary: preprocess is tokenizing the prompt, postprocess
// detokenizing the output, infer the rest; ttft, the time to the first
// token, is a metric beside them.
func (s *Session) ServerTiming() string {
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
	}
	total := time.Since(s.start)
	return fmt.Sprintf("%s;dur=%s, ttft;dur=%s, %s;dur=%s, %s;dur=%s, %s;dur=%s",
		profile.Preprocess, ms(s.encoded), ms(s.first), profile.Infer, ms(total-s.encoded-s.decoded),
		profile.Postprocess, ms(s.decoded), profile.Total, ms(total))
}

// Cancel stops the generation, if it still runs, and frees its slot.
func (s *Session) Cancel() { s.cancel() }

// OutputTokens counts the tokens generated so far.
func (s *Session) OutputTokens() int { return len(s.ids) }

// PromptText returns the prompt as text (for echo).
func (s *Session) PromptText() string { return s.g.Decode(s.Prompt) }
