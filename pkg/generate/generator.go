package generate

import (
	"context"
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tokenizer"
)

// Generator serves a model version as a text generator: its tokenizer,
// its decoder (the runner's session, in process or in a model host) and
// the engine that batches sequences on it.
type Generator struct {
	cfg runner.GenerationConfig
	tok *tokenizer.WordPiece
	// maxPrompt is the most tokens a prompt may have: the config's
	// tokenizer.max_length, which defaults to the context length.
	maxPrompt int
	dec       *runner.Decoder
	engine    *Engine
}

func init() { runner.RegisterGenerator(load) }

var _ runner.TextGenerator = (*Generator)(nil)

// Of returns m's text generator, nil when m does not generate text.
func Of(m *runner.Model) *Generator {
	g, _ := m.Generator().(*Generator)
	return g
}

// Config returns the generation settings in effect.
func (g *Generator) Config() runner.GenerationConfig { return g.cfg }

// MaxPromptTokens returns the most tokens a prompt may have
// (tokenizer.max_length); a longer one is refused, never truncated.
func (g *Generator) MaxPromptTokens() int { return g.maxPrompt }

// Device returns the device the decoder runs on.
func (g *Generator) Device() runner.Device { return g.dec.Device() }

// Vocab returns the number of token ids the tokenizer knows; valid prompt
// token ids are [0, Vocab).
func (g *Generator) Vocab() int { return g.tok.Size() }

// Encode returns the token ids of text, without special tokens.
func (g *Generator) Encode(text string) []int64 { return g.tok.EncodeText(nil, text) }

// Decode returns the text of token ids, special tokens left out.
func (g *Generator) Decode(ids []int64) string { return g.tok.Decode(ids) }

// TextTokens counts the tokens of text, special tokens left out.
func (g *Generator) TextTokens(text string) int { return len(g.Encode(text)) }

// Generate starts a sequence; see Engine.Generate.
func (g *Generator) Generate(ctx context.Context, req GenerateRequest) (*Stream, error) {
	return g.engine.Generate(ctx, req)
}

// Stats returns the engine's counters.
func (g *Generator) Stats() EngineStats { return g.engine.Stats() }

// Close stops the engine; the model closes the decoder.
func (g *Generator) Close() { g.engine.Close() }

// Drain lets the sequences in flight finish, for at most grace, and then
// closes the engine (Engine.Drain).
func (g *Generator) Drain(grace time.Duration) { g.engine.Drain(grace) }

// load builds a text generator's engine on its decoder: the runner calls
// it for a model version with a generation: block.
func load(ctx context.Context, dec *runner.Decoder, cfg runner.Config, readFile func(string) ([]byte, error)) (runner.TextGenerator, error) {
	tc := cfg.Tokenizer
	vocab, err := readFile(tc.Vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tok, err := tokenizer.NewWordPiece(vocab, *tc.Lowercase)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", tc.Vocab, err)
	}
	if dec.Vocab < tok.Size() {
		return nil, fmt.Errorf("tokenizer: %d tokens, the decoder's logits cover %d", tok.Size(), dec.Vocab)
	}
	gc := *cfg.Generation
	sched := Continuous
	if gc.Scheduling == "static" {
		sched = Static
	}
	engine, err := NewEngine(dec, EngineOptions{Scheduling: sched, MaxBatch: gc.MaxBatch, BatchWait: 20 * time.Millisecond,
		KVBytes: int64(gc.KVCacheBytes), PrefixCache: *gc.PrefixCache, EOS: tok.SepID(), MaxPositions: gc.MaxPositions})
	if err != nil {
		return nil, err
	}
	// A request that names no max_tokens gets the default, after a prompt
	// of at least a token: a default the key/value budget cannot hold
	// would refuse every such request.
	if held := engine.pool.positions(); gc.DefaultMaxTokens+1 > held {
		engine.Close()
		return nil, fmt.Errorf("generation.default_max_tokens %d: generation.kv_cache_bytes holds %d positions of this decoder, and a prompt takes one at least", gc.DefaultMaxTokens, held)
	}
	if n, err := probeLongest(ctx, engine, gc.MaxPositions); err != nil {
		engine.Close()
		return nil, fmt.Errorf("generation.max_positions %d: a sequence of %d tokens fails in the decoder (is its position table shorter?): %w", gc.MaxPositions, n, err)
	}
	return &Generator{cfg: gc, tok: tok, maxPrompt: tc.MaxLength, dec: dec, engine: engine}, nil
}

// probeLongest runs the longest sequence the engine admits (max_positions,
// or what the key/value budget holds when that is less), a prompt of all
// but one of its tokens and one more generated, so that a decoder whose
// positions end sooner (a max_positions past its position table) fails
// its load, naming the setting, rather than every long prompt with 500:
// as serving engines run a sequence of their maximum length at start-up
// to size their memory (vLLM's profile run).
//
// ctx bounds it: the version's load timeout.
func probeLongest(ctx context.Context, e *Engine, maxPositions int) (int, error) {
	longest := min(maxPositions, e.pool.positions())
	if longest < 2 {
		return longest, nil
	}
	out, err := e.Generate(ctx, GenerateRequest{Prompt: make([]int64, longest-1), MaxTokens: 1})
	if err != nil {
		return longest, err
	}
	for tok := range out.All() {
		if tok.Err != nil {
			return longest, tok.Err
		}
	}
	return longest, nil
}
