package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/yamlfile"
)

// Config is one model's configuration, read from models/<name>/config.yaml.
// Every field has a default (see Defaults); Validate checks the result
// against the model's graph.
type Config struct {
	// MaxBatchSize is the largest number of rows one execution may hold.
	// 0 turns batching off. Unset, it is DefaultMaxBatchSize for models
	// whose first dimension is dynamic and 0 for the rest; for a text
	// generator it is generation.max_batch, the only value it takes.
	MaxBatchSize *int `yaml:"max_batch_size"`
	// DynamicBatching shapes how queued requests are merged.
	DynamicBatching DynamicBatching `yaml:"dynamic_batching"`
	// Instances is the number of sessions (and execution threads) the
	// model version runs; each executes one batch at a time.
	Instances int `yaml:"instances"`
	// IntraOpThreads and InterOpThreads size each session's ONNX Runtime
	// thread pools; 0 lets the runtime choose (one per core).
	IntraOpThreads int `yaml:"intra_op_threads"`
	InterOpThreads int `yaml:"inter_op_threads"`
	// ThreadSpinning lets idle runtime threads spin waiting for work (the
	// runtime's default). Spinning lowers latency on an idle machine but
	// takes cores from request handling; unset, it is off, since the
	// server's own goroutines share the cores.
	ThreadSpinning bool `yaml:"thread_spinning"`
	// Device is "cpu", "cuda:N" or "tensorrt:N".
	Device string `yaml:"device"`
	// ProviderOptions are passed to the CUDA or TensorRT execution provider
	// as they are (gpu_mem_limit, arena_extend_strategy,
	// cudnn_conv_algo_search, trt_fp16_enable, ...).
	ProviderOptions map[string]string `yaml:"provider_options"`
	// Isolation is where the sessions run: "process" (each instance in a
	// model host, a child process a runtime crash cannot take the server
	// down with) or "none" (in the server's process). Unset, it is the
	// server's --isolation.
	Isolation string `yaml:"isolation"`
	// Resources bounds each model host.
	Resources Resources `yaml:"resources"`
	// FallbackToCPU loads the model on the CPU when the device asked for is
	// not available, instead of failing the load.
	FallbackToCPU bool `yaml:"fallback_to_cpu"`
	// Warmup runs generated inputs through every instance before the model
	// is marked ready.
	Warmup Warmup `yaml:"warmup"`
	// Tokenizer, when set, lets clients send text (see TokenizerConfig).
	Tokenizer *TokenizerConfig `yaml:"tokenizer"`
	// Cost prices one instance of the model, for cost estimates.
	Cost Cost `yaml:"cost"`
	// Cache configures the model version's response cache.
	Cache CacheConfig `yaml:"cache"`
	// MaxRequestBytes bounds one request's input bytes; larger requests
	// are refused (413) before they take any memory in the queue. Unset,
	// it is the bytes of a full batch (max_batch_size rows) when every
	// input's size per row is fixed, else unbounded here (the server's
	// body limit still applies).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// CircuitBreaker stops sending requests to a failing model version.
	CircuitBreaker CircuitBreakerConfig `yaml:"circuit_breaker"`
	// Fallback is what answers, in order, while the breaker is open.
	Fallback []FallbackStep `yaml:"fallback"`
	// Generation, when set, serves the model as a text generator (a
	// decoder with a key/value cache) through a generation engine.
	Generation *GenerationConfig `yaml:"generation"`
	// Monitor watches the distributions of inputs and outputs.
	Monitor MonitorConfig `yaml:"monitor,omitempty"`
	// KeepAlive is how long a version loaded on demand stays loaded
	// after its last request (-1: never unloaded; unset: the server's
	// --keep-alive). Warm loads the model at start in on-demand mode and
	// never unloads it, so that it never pays a cold start.
	KeepAlive *KeepAlive `yaml:"keep_alive,omitempty"`
	Warm      bool       `yaml:"warm,omitempty"`
	// Pipeline, when set, makes the model a pipeline of steps over other
	// models and built-in operations, and Router one that sends each
	// request to a model chosen by rules on its inputs: the model's
	// folder then needs no model file (package pipeline reads the blocks;
	// see docs/pipelines.md).
	Pipeline *Block `yaml:"pipeline,omitempty"`
	Router   *Block `yaml:"router,omitempty"`
	// Labels names, by output, a file of the model's folder holding that
	// output's class labels, one a line (line i+1 labels class i): the
	// labels of Triton's classification extension (its label_filename).
	Labels map[string]string `yaml:"labels,omitempty"`
	// VersionPolicy chooses which version folders are loaded (unset:
	// all).
	VersionPolicy VersionPolicy `yaml:"version_policy,omitempty"`

	// lines holds the line of each key of the file the configuration was
	// read from (ParseConfig), for validate to say where a value it
	// refuses is.
	lines map[string]int
}

// Block is a block of config.yaml kept as YAML, for the package that
// owns its types to read.
type Block struct{ Node yaml.Node }

// UnmarshalYAML keeps the block's node.
func (b *Block) UnmarshalYAML(n *yaml.Node) error { b.Node = *n; return nil }

// MarshalYAML writes the block back as it was read.
func (b Block) MarshalYAML() (any, error) { return &b.Node, nil }

// GenerationConfig shapes a text generator's engine.
type GenerationConfig struct {
	// Scheduling is "continuous" (the default) or "static".
	Scheduling string `yaml:"scheduling"`
	// MaxBatch is the most sequences decoded together (16).
	MaxBatch int `yaml:"max_batch"`
	// KVCacheBytes is the key/value cache's budget (64 MiB).
	KVCacheBytes ByteSize `yaml:"kv_cache_bytes"`
	// PrefixCache reuses the cache of prompt prefixes seen before (true).
	PrefixCache *bool `yaml:"prefix_cache"`
	// MaxPositions is the model's context length (512).
	MaxPositions int `yaml:"max_positions"`
	// DefaultMaxTokens bounds a request that gives no max_tokens (64).
	DefaultMaxTokens int `yaml:"default_max_tokens"`
}

// CircuitBreakerConfig shapes a model version's circuit breaker: it
// opens when, over the last Window, at least MinRequests finished and
// FailureRate or more of them failed on the server's side (errors and
// timeouts; bad requests and shed load do not count); after OpenFor it
// lets HalfOpenRequests probes through, closing again when they succeed.
type CircuitBreakerConfig struct {
	Enabled          bool     `yaml:"enabled"`
	Window           Duration `yaml:"window"`
	MinRequests      int      `yaml:"min_requests"`
	FailureRate      float64  `yaml:"failure_rate"`
	OpenFor          Duration `yaml:"open_for"`
	HalfOpenRequests int      `yaml:"half_open_requests"`
}

// FallbackStep is one way to answer while the breaker is open: exactly
// one of its fields is set.
type FallbackStep struct {
	// Cache answers from the model version's response cache, when the
	// same request was answered before.
	Cache bool `yaml:"cache,omitempty"`
	// Model names a simpler model to ask instead, "name" (its serving
	// version) or "name:version".
	Model string `yaml:"model,omitempty"`
	// Static answers with fixed outputs.
	Static *StaticResponse `yaml:"static,omitempty"`
	// Unavailable answers 503 with a Retry-After header.
	Unavailable *Unavailable `yaml:"unavailable,omitempty"`
}

// StaticResponse is a fixed answer.
type StaticResponse struct {
	Outputs []StaticTensor `yaml:"outputs"`
}

// StaticTensor is one fixed output: numbers, read as its datatype.
type StaticTensor struct {
	Name     string    `yaml:"name"`
	Datatype string    `yaml:"datatype"`
	Shape    []int64   `yaml:"shape"`
	Data     []float64 `yaml:"data"`
}

// Unavailable is an explicit refusal.
type Unavailable struct {
	// RetryAfter is what the Retry-After header tells clients (the time
	// left until the breaker half-opens when unset).
	RetryAfter Duration `yaml:"retry_after"`
}

// Tensors returns the static outputs as tensors.
func (s StaticResponse) Tensors() ([]tensor.Tensor, error) {
	var out []tensor.Tensor
	for _, t := range s.Outputs {
		dt, ok := tensor.ParseDataType(t.Datatype)
		if !ok || dt.Size() == 0 {
			return nil, fmt.Errorf("output %q: datatype %q, want a numeric one such as FP32", t.Name, t.Datatype)
		}
		if t.Name == "" {
			return nil, errors.New("an output has no name")
		}
		n, err := tensor.ElementsChecked(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", t.Name, err)
		}
		if n != int64(len(t.Data)) {
			return nil, fmt.Errorf("output %q: shape %v holds %d elements, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		out = append(out, tensor.FromFloat64(t.Name, dt, t.Shape, t.Data))
	}
	return out, nil
}

// CacheConfig configures a response cache. Its key is a hash of the
// model, version, every input's name, datatype, shape and bytes, and the
// outputs asked for; a hit is answered without queueing. For a text model
// whose only input is text, entries are per string instead: a request's
// strings found in the cache are not encoded again, and a string repeated
// within a request is encoded once.
type CacheConfig struct {
	Enabled bool `yaml:"enabled"`
	// MaxBytes bounds the outputs held (DefaultCacheBytes when 0);
	// entries are evicted by recency and frequency to stay within it.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// TTL, when set, drops entries this long after they were stored.
	TTL Duration `yaml:"ttl"`
}

// Cost is the price of one model instance.
type Cost struct {
	USDPerHour float64 `yaml:"usd_per_hour"`
}

// DynamicBatching follows Triton's dynamic_batching block.
type DynamicBatching struct {
	// MaxQueueDelay is how long the oldest request may wait for a batch to
	// fill. 0 executes whatever is queued as soon as an instance is free.
	MaxQueueDelay Duration `yaml:"max_queue_delay"`
	// PreferredBatchSizes are sizes to aim for: when enough rows are
	// queued, the batcher forms the largest preferred size it can.
	PreferredBatchSizes []int `yaml:"preferred_batch_sizes"`
	// MaxQueueSize bounds the requests waiting; past it a request is
	// rejected at once with ErrQueueFull.
	MaxQueueSize int `yaml:"max_queue_size"`
	// PriorityLevels is the number of priorities (1 is highest, at most
	// MaxPriorityLevels: the batcher keeps a queue per level); requests
	// of a higher priority are batched first.
	PriorityLevels int `yaml:"priority_levels"`
	// DefaultPriority is the level of requests that name none.
	DefaultPriority int `yaml:"default_priority"`
	// DefaultTimeout is the deadline of requests that carry none; 0 is none.
	DefaultTimeout Duration `yaml:"default_timeout"`
}

// Warmup configures the runs made at load.
type Warmup struct {
	// Runs is the number of executions per instance; 0 skips warm-up.
	Runs *int `yaml:"runs"`
	// BatchSize is the number of rows each warm-up run holds.
	BatchSize int `yaml:"batch_size"`
	// Data is the value of every element fed: "one" (the default: no
	// integer division by zero, no logarithm of zero) or "zero", as
	// Triton's model_warmup offers zero_data.
	Data string `yaml:"data"`
}

// Defaults.
const (
	DefaultMaxBatchSize = 64
	DefaultMaxQueueSize = 1024
	DefaultWarmupRuns   = 2
	// MaxPriorityLevels bounds dynamic_batching.priority_levels.
	MaxPriorityLevels = 1024
	// MaxBatchSizeLimit bounds max_batch_size and MaxQueueSizeLimit
	// dynamic_batching.max_queue_size: the server sizes per-version state
	// by them (a counter per batch size, a place per request admitted), so
	// that a config file's number is never an allocation past what any
	// machine serves. 65,536 rows a batch is far past the largest batches
	// served (vLLM's max_num_seqs defaults to 256 to 1,024; Triton's
	// examples use 8 to 256).
	MaxBatchSizeLimit = 1 << 16
	MaxQueueSizeLimit = 1 << 20
	WarmupOne         = "one"
	WarmupZero        = "zero"
	DefaultCacheBytes = 64 << 20
)

// Duration is a time.Duration that reads from YAML as "500us", "2ms" or a
// bare number of microseconds (as Triton's *_microseconds fields hold).
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlfile.ValueError(n, "want a duration such as 500us or 2ms")
	}
	if us, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		*d = Duration(time.Duration(us) * time.Microsecond)
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return yamlfile.ValueError(n, "%q is not a duration (want e.g. 500us, 2ms)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseConfig reads a YAML model configuration of at most
// yamlfile.MaxBytes. Unknown fields are errors, so a misspelt setting is
// never silently ignored.
func ParseConfig(r io.Reader) (Config, error) {
	data, err := yamlfile.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	var c Config
	if err := yamlfile.Decode(data, &c); err != nil {
		return Config{}, err
	}
	c.lines = yamlfile.KeyLines(data)
	return c, nil
}

// Marshal returns the configuration as YAML, as a user would write it.
func (c Config) Marshal() []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(c) // encoding plain structs cannot fail
	return buf.Bytes()
}

var deviceRE = regexp.MustCompile(`^(cpu|cuda|tensorrt)(?::([0-9]+))?$`)

// Device is a parsed device name.
type Device struct {
	Kind string // "cpu", "cuda" or "tensorrt"
	ID   int
}

func (d Device) String() string {
	if d.Kind == "cpu" {
		return "cpu"
	}
	return d.Kind + ":" + strconv.Itoa(d.ID)
}

// ParseDevice parses "cpu", "cuda:N" or "tensorrt:N" ("cuda" means cuda:0).
func ParseDevice(s string) (Device, error) {
	m := deviceRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return Device{}, fmt.Errorf("device %q: want cpu, cuda:N or tensorrt:N", s)
	}
	d := Device{Kind: m[1]}
	if m[2] != "" {
		if d.Kind == "cpu" {
			return Device{}, fmt.Errorf("device %q: cpu takes no index", s)
		}
		d.ID, _ = strconv.Atoi(m[2])
	}
	return d, nil
}
