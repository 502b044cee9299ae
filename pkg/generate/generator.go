package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tokenizer"
)

// Generator serves a model version as a text generator: its tokenizer,
// its decoder and the engine that batches sequences on it.
type Generator struct {
	cfg    GenerationConfig
	tok    *tokenizer.WordPiece
	dec    *Decoder
	engine *Engine
}

// Generator returns the model's text generator, nil for other models.
func (m *Model) Generator() *Generator { return m.gen }

// Config returns the generation settings in effect.
func (g *Generator) Config() GenerationConfig { return g.cfg }

// Encode returns the token ids of text, without special tokens.
func (g *Generator) Encode(text string) []int64 { return g.tok.EncodeText(nil, text) }

// Decode returns the text of token ids.
func (g *Generator) Decode(ids []int64) string { return g.tok.Decode(ids) }

// Generate starts a sequence; see Engine.Generate.
func (g *Generator) Generate(ctx context.Context, req GenerateRequest) (<-chan Token, error) {
	return g.engine.Generate(ctx, req)
}

// Stats returns the engine's counters.
func (g *Generator) Stats() EngineStats { return g.engine.Stats() }

func (g *Generator) close() {
	g.engine.Close()
	g.dec.Close()
}

// loadGenerator creates a model version served through a generation
// engine: clients send text (text_input) and get text (text_output).
func loadGenerator(meta Metadata, onnx []byte, cfg Config, opts LoadOptions, log *slog.Logger, start time.Time) (*Model, error) {
	tc := cfg.Tokenizer
	if opts.ReadFile == nil {
		return nil, fmt.Errorf("tokenizer: a text generator's vocabulary lives beside it, in a model repository folder")
	}
	vocab, err := opts.ReadFile(tc.Vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tok, err := tokenizer.NewWordPiece(vocab, *tc.Lowercase)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", tc.Vocab, err)
	}
	dec, err := LoadDecoder(meta.Name, onnx, cfg)
	if err != nil {
		return nil, err
	}
	if dec.Vocab < tok.Size() {
		dec.Close()
		return nil, fmt.Errorf("tokenizer: %d tokens, the decoder's logits cover %d", tok.Size(), dec.Vocab)
	}
	gc := *cfg.Generation
	sched := Continuous
	if gc.Scheduling == "static" {
		sched = Static
	}
	engine, err := NewEngine(dec, EngineOptions{Scheduling: sched, MaxBatch: gc.MaxBatch, BatchWait: 20 * time.Millisecond,
		KVBytes: gc.KVCacheBytes, PrefixCache: *gc.PrefixCache, EOS: tok.SepID(), MaxPositions: gc.MaxPositions})
	if err != nil {
		dec.Close()
		return nil, err
	}
	served := meta
	served.Inputs = []TensorSpec{{Name: "text_input", DataType: tensor.Bytes, Shape: []int64{1}}}
	served.Outputs = []TensorSpec{{Name: "text_output", DataType: tensor.Bytes, Shape: []int64{1}}}
	// A hosted decoder's crashes are the version's.
	hosts, isolation := dec.health, IsolationProcess
	if hosts == nil {
		hosts, isolation = &hostHealth{limit: DefaultCrashLimit, window: DefaultCrashWindow}, IsolationNone
	}
	m := &Model{meta: meta, served: served, cfg: cfg, batcher: newBatcher(cfg), log: log, device: Device{Kind: "cpu"},
		gen: &Generator{cfg: gc, tok: tok, dec: dec, engine: engine}, isolation: isolation,
		hosts: hosts, closing: make(chan struct{})}
	m.stats.batchSizes = make([]atomic.Int64, 2)
	m.loadDuration = time.Since(start)
	log.Info("model loaded", "generator", true, "scheduling", gc.Scheduling, "max_batch", gc.MaxBatch,
		"kv_cache_bytes", gc.KVCacheBytes, "prefix_cache", *gc.PrefixCache, "load", m.loadDuration)
	return m, nil
}

// TextTokens returns how many tokens the model's tokenizer makes of text
// (special tokens included), for a model that takes text; ok is false for
// others.
func (m *Model) TextTokens(text string) (int, bool) {
	switch {
	case m.text != nil:
		return len(m.text.tok.Encode(nil, text, m.text.cfg.MaxLength)), true
	case m.gen != nil:
		return len(m.gen.Encode(text)), true
	}
	return 0, false
}
