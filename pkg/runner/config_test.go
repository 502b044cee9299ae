package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(`
max_batch_size: 32
dynamic_batching:
  max_queue_delay: 250us
  preferred_batch_sizes: [16, 8]
  default_timeout: 1500     # microseconds, as Triton writes them
instances: 2
device: cuda:1
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults(true)
	if err := cfg.validate(true); err != nil {
		t.Fatal(err)
	}
	if *cfg.MaxBatchSize != 32 || time.Duration(cfg.DynamicBatching.MaxQueueDelay) != 250*time.Microsecond ||
		time.Duration(cfg.DynamicBatching.DefaultTimeout) != 1500*time.Microsecond || cfg.Instances != 2 {
		t.Fatalf("parsed %+v", cfg)
	}
	if got := cfg.DynamicBatching.PreferredBatchSizes; got[0] != 8 || got[1] != 16 {
		t.Fatalf("preferred sizes %v, want sorted [8 16]", got)
	}
	if cfg.DynamicBatching.MaxQueueSize != DefaultMaxQueueSize || *cfg.Warmup.Runs != DefaultWarmupRuns {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if d, _ := ParseDevice(cfg.Device); d.Kind != "cuda" || d.ID != 1 {
		t.Fatalf("device %+v", d)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"max_batch_sise: 8", "max_batch_sise"},
		{strings.Repeat("# a comment line of forty bytes or so.\n", 30_000), "over 1 MiB"},
		{"max_batch_size: -1", "max_batch_size"},
		{"max_batch_size: 10000000000000", "max_batch_size: 10000000000000 is over the limit of 65536"},
		{"max_batch_size: 9223372036854775807\ndynamic_batching: {max_queue_size: 9223372036854775807}", "dynamic_batching.max_queue_size: 9223372036854775807 is outside 0..1048576"},
		{"dynamic_batching: {max_queue_delay: soon}", `"soon" is not a duration`},
		{"dynamic_batching: {preferred_batch_sizes: [128]}", "preferred_batch_sizes: 128"},
		{"dynamic_batching: {preferred_batch_sizes: [8, 8]}", "preferred_batch_sizes: 8 is given twice"},
		{"dynamic_batching: {preferred_batch_sizes: [" + strings.Repeat("1, ", 64) + "1]}", "preferred_batch_sizes: 65 sizes, want at most 64"},
		{"dynamic_batching: {priority_levels: 2, default_priority: 3}", "default_priority"},
		{"device: gpu", "device"},
		{"device: cpu:1", "cpu takes no index"},
		{"instances: 100", "instances"},
		{"warmup: {runs: -1}", "warmup.runs"},
		{"cache: {enabled: true, max_bytes: -5}", "cache.max_bytes"},
		{"cache: {ttl: -1s}", "cache.ttl"},
		{"max_request_bytes: -1", "max_request_bytes"},
		{"circuit_breaker: {enabled: true, failure_rate: 2}", "circuit_breaker.failure_rate"},
		{"circuit_breaker: {enabled: true, window: 1ms}", "circuit_breaker.window"},
		{"fallback: [{unavailable: {}}]", "enable circuit_breaker too"},
		{"circuit_breaker: {enabled: true}\nfallback: [{cache: true, model: x}]", "fallback[0]: want exactly one"},
		{"circuit_breaker: {enabled: true}\nfallback: [{cache: true}]", "the response cache is not enabled"},
		{"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: FP32, shape: [1, 2], data: [1]}]}}]", "holds 2 elements, data has 1"},
		{"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: BYTES, shape: [1], data: [1]}]}}]", `datatype "BYTES"`},
		{"circuit_breaker: {enabled: true}\nfallback: [{static: {outputs: [{name: y, datatype: FP32, shape: [4294967296, 4294967296], data: [1]}]}}]", "overflows int64"},
		{"dynamic_batching: {priority_levels: 100000000000}", "dynamic_batching.priority_levels: 100000000000 is outside 1..1024"},
		{"generation: {scheduling: eager}", "generation.scheduling"},
		{"generation: {}", "needs a tokenizer"},
		{"tokenizer: {}\ngeneration: {max_batch: 5000}", "generation.max_batch"},
		{"tokenizer: {}\ngeneration: {kv_cache_bytes: 10}", "generation.kv_cache_bytes"},
		{"tokenizer: {}\ngeneration: {kv_cache_bytes: 1000000000000000000}", "generation.kv_cache_bytes: 1000000000000000000, over this machine's"},
		{"tokenizer: {}\ngeneration: {max_positions: 64, default_max_tokens: 64}", "generation.default_max_tokens"},
		{"max_batch_size: 64\ntokenizer: {}\ngeneration: {}", "generation.max_batch (16)"},
		{"max_batch_size: lots", "line 1: max_batch_size: `lots` is not a whole number"},
		{"dynamic_batching:\n  max_queue_size: [1]", "line 2: dynamic_batching.max_queue_size: a list is not a whole number"},
		{"instanses: 2", "line 1: instanses: no such key (the keys here are max_batch_size, dynamic_batching, instances,"},
		{"tokenizer: {max_length: 1024}\ngeneration: {}", "generation.max_positions 512"},
	} {
		cfg, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil {
			cfg = cfg.withDefaults(true)
			err = cfg.validate(true)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want it to mention %q", tc.yaml, err, tc.want)
		}
	}
}

// Every problem of a file is reported, each on its line with its key,
// those found by a value's own parsing (durations, sizes, keep_alive) as
// well as yaml's: one such problem used to stop the decoding, hiding the
// rest.
func TestConfigErrorsAreAllReported(t *testing.T) {
	_, err := ParseConfig(strings.NewReader("max_batch_size: lots\ndynamic_batching: {max_queue_delay: soon}\nkeep_alive: yesterday\ncolour: blue\nresources: {memory: lots}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"line 1: max_batch_size: `lots` is not a whole number",
		`line 2: dynamic_batching.max_queue_delay: "soon" is not a duration`,
		`line 3: keep_alive "yesterday": want a duration`,
		"line 4: colour: no such key",
		`line 5: resources.memory: "lots" is not a size`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the errors lack %q:\n%v", want, err)
		}
	}
}

// A value refused by validation is said to be on its line of the file, as
// a value refused by decoding is.
func TestConfigRangeErrorsNameTheirLine(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("max_batch_size: 70000\ndynamic_batching:\n  max_queue_size: 2000000\ninstances: -1\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.withDefaults(true).validate(true)
	for _, want := range []string{"line 1: max_batch_size: 70000 is over", "line 3: dynamic_batching.max_queue_size: 2000000 is outside", "line 4: instances: -1 is outside"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v lack %q", err, want)
		}
	}
}

func TestLocateLibraryNamesTheFix(t *testing.T) {
	t.Setenv(LibraryEnv, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	_, err := LocateLibrary("")
	if err == nil || !strings.Contains(err.Error(), "scripts/setup-onnxruntime.sh") {
		t.Fatalf("err %v, want the setup command named", err)
	}
	if _, err := LocateLibrary("/no/such/libonnxruntime.so"); err == nil || !strings.Contains(err.Error(), "--onnxruntime-lib") {
		t.Fatalf("explicit path: err %v", err)
	}
}

// modelsDocYAML returns the first YAML block of docs/models.md after the
// text from.
func modelsDocYAML(t *testing.T, from string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "models.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), from)
	_, block, ok2 := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatalf("docs/models.md has no YAML block after %q", from)
	}
	return block
}

// The configuration the reference shows (docs/models.md) is one this
// build reads and accepts.
func TestREADMEConfigParses(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(modelsDocYAML(t, "## config.yaml")))
	if err != nil {
		t.Fatalf("docs/models.md's config.yaml: %v", err)
	}
	cfg = cfg.withDefaults(true)
	if err := cfg.validate(true); err != nil {
		t.Fatalf("docs/models.md's config.yaml: %v", err)
	}
	if cfg.Cache.MaxBytes != 64<<20 || len(cfg.Fallback) != 4 || !cfg.CircuitBreaker.Enabled {
		t.Fatalf("the README's config.yaml read as %+v", cfg)
	}
}

// The generator's configuration the reference shows (docs/models.md) is
// one this build reads and accepts, and the defaults it states are the
// ones a generator gets.
func TestDocsGenerationConfigParses(t *testing.T) {
	block := modelsDocYAML(t, "A text generator")
	cfg, err := ParseConfig(strings.NewReader(block))
	if err != nil || cfg.Generation == nil {
		t.Fatalf("docs/models.md's generation block: %v\n%s", err, block)
	}
	cfg = cfg.withDefaults(true)
	if err := cfg.validate(true); err != nil {
		t.Fatalf("docs/models.md's generation block: %v", err)
	}
	// Each value the block shows is the default it states.
	defaults, err := ParseConfig(strings.NewReader("tokenizer: {}\ngeneration: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	defaults = defaults.withDefaults(true)
	if got, want := *cfg.Generation, *defaults.Generation; got.Scheduling != want.Scheduling || got.MaxBatch != want.MaxBatch || got.KVCacheBytes != want.KVCacheBytes ||
		*got.PrefixCache != *want.PrefixCache || got.MaxPositions != want.MaxPositions || got.DefaultMaxTokens != want.DefaultMaxTokens {
		t.Fatalf("the block shows %+v, the defaults are %+v", got, want)
	}
	if *cfg.MaxBatchSize != cfg.Generation.MaxBatch || cfg.Tokenizer.MaxLength != cfg.Generation.MaxPositions || cfg.Tokenizer.Vocab != "vocab.txt" {
		t.Fatalf("max_batch_size %d, tokenizer %+v: want the generator's limits", *cfg.MaxBatchSize, cfg.Tokenizer)
	}
}

// Sizes take Kubernetes' suffixes and the decimal ones people write
// ("1GB" was refused), and nothing else.
func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"1048576": 1 << 20, "512Mi": 512 << 20, "2Gi": 2 << 30, "8GiB": 8 << 30, "500M": 500e6,
		"1GB": 1e9, "256MB": 256e6, "64KB": 64e3, "2TB": 2e12, " 3Gi ": 3 << 30,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "1.5GB", "-1Gi", "9999999999TB", "GB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q): no error", in)
		}
	}
}
