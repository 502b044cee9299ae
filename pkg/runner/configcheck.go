package runner

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

// withDefaults returns c with every unset field given its default, for a
// model whose batch dimension is dynamic when batchable is true.
func (c Config) withDefaults(batchable bool) Config {
	if c.MaxBatchSize == nil && c.Generation == nil { // a generator's follows its generation block
		n := 0
		if batchable {
			n = DefaultMaxBatchSize
		}
		c.MaxBatchSize = &n
	}
	db := &c.DynamicBatching
	if db.MaxQueueSize == 0 {
		db.MaxQueueSize = DefaultMaxQueueSize
	}
	if db.PriorityLevels == 0 {
		db.PriorityLevels = 1
	}
	if db.DefaultPriority == 0 {
		db.DefaultPriority = (db.PriorityLevels + 1) / 2
	}
	db.PreferredBatchSizes = append([]int(nil), db.PreferredBatchSizes...)
	sort.Ints(db.PreferredBatchSizes)
	if c.Instances == 0 {
		c.Instances = 1
	}
	if c.Device == "" {
		c.Device = "cpu"
	}
	if c.Isolation == "" {
		c.Isolation = DefaultIsolation
	}
	if c.Warmup.Runs == nil {
		n := DefaultWarmupRuns
		c.Warmup.Runs = &n
	}
	if c.Warmup.BatchSize == 0 {
		c.Warmup.BatchSize = 1
	}
	if c.Warmup.Data == "" {
		c.Warmup.Data = WarmupOne
	}
	if c.Cache.Enabled && c.Cache.MaxBytes == 0 {
		c.Cache.MaxBytes = DefaultCacheBytes
	}
	if g := c.Generation; g != nil {
		d := *g
		if d.Scheduling == "" {
			d.Scheduling = "continuous"
		}
		if d.MaxBatch == 0 {
			d.MaxBatch = 16
		}
		if d.KVCacheBytes == 0 {
			d.KVCacheBytes = 64 << 20
		}
		if d.PrefixCache == nil {
			yes := true
			d.PrefixCache = &yes
		}
		if d.MaxPositions == 0 {
			d.MaxPositions = 512
		}
		if d.DefaultMaxTokens == 0 {
			d.DefaultMaxTokens = 64
		}
		c.Generation = &d
		// What applies to a generator is shown as it applies: requests
		// hold at most max_batch prompts, and a prompt at most the
		// context's tokens unless the tokenizer block says fewer.
		if c.MaxBatchSize == nil {
			n := d.MaxBatch
			c.MaxBatchSize = &n
		}
		if c.Tokenizer != nil && c.Tokenizer.MaxLength == 0 {
			t := *c.Tokenizer
			t.MaxLength = d.MaxPositions
			c.Tokenizer = &t
		}
	}
	if c.Tokenizer != nil {
		c.Tokenizer = c.Tokenizer.withDefaults()
	}
	if cb := &c.CircuitBreaker; cb.Enabled {
		if cb.Window == 0 {
			cb.Window = Duration(10 * time.Second)
		}
		if cb.MinRequests == 0 {
			cb.MinRequests = 20
		}
		if cb.FailureRate == 0 {
			cb.FailureRate = 0.5
		}
		if cb.OpenFor == 0 {
			cb.OpenFor = Duration(5 * time.Second)
		}
		if cb.HalfOpenRequests == 0 {
			cb.HalfOpenRequests = 1
		}
	}
	return c
}

// validate checks a defaulted configuration for a model whose batch
// dimension is dynamic when batchable is true. Every problem is reported,
// each naming its field.
func (c Config) validate(batchable bool) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, c.at(fmt.Errorf(format, args...))) }
	mbs := *c.MaxBatchSize
	switch {
	case mbs < 0:
		bad("max_batch_size: %d is negative", mbs)
	case mbs > MaxBatchSizeLimit:
		bad("max_batch_size: %d is over the limit of %d", mbs, MaxBatchSizeLimit)
	case mbs > 0 && !batchable:
		bad("max_batch_size: %d, but the model's first dimension is fixed in some input or output, so it cannot be batched (set max_batch_size: 0)", mbs)
	}
	db := c.DynamicBatching
	if db.MaxQueueDelay < 0 {
		bad("dynamic_batching.max_queue_delay: %v is negative", time.Duration(db.MaxQueueDelay))
	}
	if n := len(db.PreferredBatchSizes); n > maxPreferredSizes {
		bad("dynamic_batching.preferred_batch_sizes: %d sizes, want at most %d", n, maxPreferredSizes)
	} else {
		seen := map[int]bool{}
		for _, p := range db.PreferredBatchSizes {
			if p < 1 || p > mbs {
				bad("dynamic_batching.preferred_batch_sizes: %d is outside 1..max_batch_size (%d)", p, mbs)
			} else if seen[p] {
				bad("dynamic_batching.preferred_batch_sizes: %d is given twice", p)
			}
			seen[p] = true
		}
	}
	if db.MaxQueueSize < 0 || db.MaxQueueSize > MaxQueueSizeLimit {
		bad("dynamic_batching.max_queue_size: %d is outside 0..%d", db.MaxQueueSize, MaxQueueSizeLimit)
	}
	if db.PriorityLevels < 1 || db.PriorityLevels > MaxPriorityLevels {
		bad("dynamic_batching.priority_levels: %d is outside 1..%d", db.PriorityLevels, MaxPriorityLevels)
	}
	if db.DefaultPriority < 1 || db.DefaultPriority > db.PriorityLevels {
		bad("dynamic_batching.default_priority: %d is outside 1..priority_levels (%d)", db.DefaultPriority, db.PriorityLevels)
	}
	if db.DefaultTimeout < 0 {
		bad("dynamic_batching.default_timeout: %v is negative", time.Duration(db.DefaultTimeout))
	}
	if c.Instances < 1 || c.Instances > 64 {
		bad("instances: %d is outside 1..64", c.Instances)
	}
	if err := validIsolation(c.Isolation); err != nil {
		bad("%v", err)
	}
	if c.Resources.ExecutionTimeout < 0 {
		bad("resources.execution_timeout: %v is negative", time.Duration(c.Resources.ExecutionTimeout))
	}
	if n := runtime.NumCPU() * 4; c.IntraOpThreads < 0 || c.IntraOpThreads > n {
		bad("intra_op_threads: %d is outside 0..%d", c.IntraOpThreads, n)
	}
	if n := runtime.NumCPU() * 4; c.InterOpThreads < 0 || c.InterOpThreads > n {
		bad("inter_op_threads: %d is outside 0..%d", c.InterOpThreads, n)
	}
	if _, err := ParseDevice(c.Device); err != nil {
		bad("device: %v", err)
	}
	if c.Warmup.Data != WarmupOne && c.Warmup.Data != WarmupZero {
		bad("warmup.data: %q, want %s or %s", c.Warmup.Data, WarmupOne, WarmupZero)
	}
	if *c.Warmup.Runs < 0 {
		bad("warmup.runs: %d is negative", *c.Warmup.Runs)
	}
	if limit := max(1, mbs); c.Warmup.BatchSize < 1 || c.Warmup.BatchSize > limit {
		bad("warmup.batch_size: %d is outside 1..%d", c.Warmup.BatchSize, limit)
	}
	if p := c.Cost.USDPerHour; p < 0 || p != p {
		bad("cost.usd_per_hour: %v, want a price of zero or more", p)
	}
	if c.Cache.MaxBytes < 0 || c.Cache.MaxBytes > 1<<40 {
		bad("cache.max_bytes: %d is outside 0..1TiB", c.Cache.MaxBytes)
	}
	if c.Cache.TTL < 0 {
		bad("cache.ttl: %v is negative", time.Duration(c.Cache.TTL))
	}
	if c.MaxRequestBytes < 0 {
		bad("max_request_bytes: %d is negative", c.MaxRequestBytes)
	}
	if cb := c.CircuitBreaker; cb.Enabled {
		if cb.Window < Duration(10*time.Millisecond) {
			bad("circuit_breaker.window: %v, want at least 10ms", time.Duration(cb.Window))
		}
		if cb.MinRequests < 1 {
			bad("circuit_breaker.min_requests: %d, want at least 1", cb.MinRequests)
		}
		if !(cb.FailureRate > 0 && cb.FailureRate <= 1) {
			bad("circuit_breaker.failure_rate: %v is outside (0, 1]", cb.FailureRate)
		}
		if cb.OpenFor <= 0 {
			bad("circuit_breaker.open_for: %v, want a positive duration", time.Duration(cb.OpenFor))
		}
		if cb.HalfOpenRequests < 1 {
			bad("circuit_breaker.half_open_requests: %d, want at least 1", cb.HalfOpenRequests)
		}
	}
	if g := c.Generation; g != nil {
		if g.Scheduling != "continuous" && g.Scheduling != "static" {
			bad("generation.scheduling: %q, want continuous or static", g.Scheduling)
		}
		if g.MaxBatch < 1 || g.MaxBatch > 1024 {
			bad("generation.max_batch: %d is outside 1..1024", g.MaxBatch)
		}
		if g.KVCacheBytes < 1<<20 {
			bad("generation.kv_cache_bytes: %d, want at least 1 MiB", g.KVCacheBytes)
		} else if total := physicalMemory(); total > 0 && int64(g.KVCacheBytes) > total {
			bad("generation.kv_cache_bytes: %d, over this machine's %d bytes of memory", g.KVCacheBytes, total)
		}
		if g.MaxPositions < 2 {
			bad("generation.max_positions: %d, want at least 2", g.MaxPositions)
		}
		if g.DefaultMaxTokens < 1 || g.DefaultMaxTokens >= g.MaxPositions {
			bad("generation.default_max_tokens: %d is outside 1..max_positions-1", g.DefaultMaxTokens)
		}
		if c.Tokenizer == nil {
			bad("generation: a text generator needs a tokenizer block (its vocabulary)")
		} else if c.Tokenizer.MaxLength > g.MaxPositions {
			bad("tokenizer.max_length: %d, more than the context (generation.max_positions %d)", c.Tokenizer.MaxLength, g.MaxPositions)
		}
		if mbs := *c.MaxBatchSize; mbs != g.MaxBatch {
			bad("max_batch_size: %d, but a text generator decodes at most generation.max_batch (%d) sequences together: set that instead", mbs, g.MaxBatch)
		}
	}
	if len(c.Fallback) > 0 && !c.CircuitBreaker.Enabled {
		bad("fallback: a fallback answers while the circuit breaker is open; enable circuit_breaker too")
	}
	for i, f := range c.Fallback {
		set := 0
		for _, on := range []bool{f.Cache, f.Model != "", f.Static != nil, f.Unavailable != nil} {
			if on {
				set++
			}
		}
		if set != 1 {
			bad("fallback[%d]: want exactly one of cache, model, static, unavailable", i)
		}
		if f.Cache && !c.Cache.Enabled {
			bad("fallback[%d]: cache, but the response cache is not enabled", i)
		}
		if f.Static != nil {
			if _, err := f.Static.Tensors(); err != nil {
				bad("fallback[%d].static: %v", i, err)
			}
		}
		if f.Unavailable != nil && f.Unavailable.RetryAfter < 0 {
			bad("fallback[%d].unavailable.retry_after: %v is negative", i, time.Duration(f.Unavailable.RetryAfter))
		}
	}
	if t := c.Tokenizer; t != nil {
		if t.MaxLength < 3 {
			bad("tokenizer.max_length: %d, want at least 3 ([CLS], a token, [SEP])", t.MaxLength)
		}
		if t.IDs == t.Mask {
			bad("tokenizer.ids and tokenizer.mask are both %q", t.IDs)
		}
		if mbs == 0 && !batchable {
			bad("tokenizer: the model's first dimension is fixed; text inputs need a batch dimension")
		}
	}
	return errors.Join(errs...)
}

// maxPreferredSizes bounds dynamic_batching.preferred_batch_sizes: a few
// sizes say what a batcher should aim for; thousands say nothing more and
// cost every batch a longer search.
const maxPreferredSizes = 64

// at prefixes err, which names a field first ("dynamic_batching.max_queue_size:
// ..."), with the line of that field in the file the configuration was
// read from, when it was read from one and sets the field.
func (c Config) at(err error) error {
	field, _, _ := strings.Cut(err.Error(), " ")
	field = strings.TrimSuffix(field, ":")
	if line, ok := c.lines[field]; ok {
		return fmt.Errorf("line %d: %w", line, err)
	}
	return err
}
