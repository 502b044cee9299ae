package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// TextGenerator is the generation engine a text generator's model version
// serves through (package generate builds it on the version's Decoder).
// The runner owns the version's life, its decoder's session or model host
// and that host's health; the engine owns scheduling, the key/value cache,
// sampling and text.
type TextGenerator interface {
	// Close stops the engine: sequences in flight end with ErrClosed. The
	// model closes the decoder after it.
	Close()
	// Drain lets the sequences in flight finish, for at most grace, and
	// then closes the engine: what an unload uses.
	Drain(grace time.Duration)
	// TextTokens counts the tokens the generator's tokenizer makes of
	// text, special tokens left out.
	TextTokens(text string) int
}

// GeneratorLoader builds the engine of a text generator on its loaded
// decoder, from the version's config (defaults applied, Generation and
// Tokenizer set) and the files of its folder, within ctx (which ends with
// the version's load timeout).
type GeneratorLoader func(ctx context.Context, dec *Decoder, cfg Config, readFile func(string) ([]byte, error)) (TextGenerator, error)

var generators struct {
	mu   sync.Mutex
	load GeneratorLoader
}

// RegisterGenerator sets the loader of text generators' engines. Package
// generate registers its own when it is linked in, as image decoders and
// database drivers register themselves; a model with a generation: block
// fails to load while none is.
func RegisterGenerator(l GeneratorLoader) {
	generators.mu.Lock()
	defer generators.mu.Unlock()
	generators.load = l
}

// Generator returns the model's generation engine, nil for other models.
func (m *Model) Generator() TextGenerator { return m.gen }

// Decoder returns a text generator's decoder, nil for other models.
func (m *Model) Decoder() *Decoder { return m.decoder }

// loadGenerator creates a model version served through a generation
// engine: clients send text (text_input) and get text (text_output).
func loadGenerator(meta Metadata, onnx []byte, cfg Config, opts LoadOptions, log *slog.Logger, start time.Time) (*Model, error) {
	generators.mu.Lock()
	load := generators.load
	generators.mu.Unlock()
	if load == nil {
		return nil, fmt.Errorf("config: generation: no generation engine is linked into this program (import package generate)")
	}
	if opts.ReadFile == nil {
		return nil, fmt.Errorf("tokenizer: a text generator's vocabulary lives beside it, in a model repository folder")
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(opts.loadTimeout()))
	defer cancel()
	dec, err := loadDecoder(meta.Name, onnx, cfg, opts.loadTimeout())
	if err != nil {
		return nil, err
	}
	gen, err := load(ctx, dec, cfg, opts.ReadFile)
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
	m := &Model{meta: meta, served: served, cfg: cfg, batcher: newBatcher(cfg), log: log, device: dec.Device(),
		gen: gen, decoder: dec, isolation: isolation, hosts: hosts, closing: make(chan struct{})}
	m.stats.batchSizes = make([]atomic.Int64, 2)
	m.loadDuration = time.Since(start)
	gc := cfg.Generation
	log.Info("model loaded", "generator", true, "device", m.device.String(), "scheduling", gc.Scheduling, "max_batch", gc.MaxBatch,
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
		return m.gen.TextTokens(text), true
	}
	return 0, false
}
