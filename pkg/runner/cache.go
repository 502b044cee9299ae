package runner

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/tensor"
)

// cacheKey is a 128-bit digest of everything that decides a response: two
// independently seeded hashes, so that two different requests sharing a
// key is as unlikely as a 128-bit collision.
type cacheKey struct{ a, b uint64 }

// cached is one stored response.
type cached struct {
	outputs []tensor.Tensor
	stored  time.Time
}

// responseCache holds a model version's outputs by request digest. Its
// TTL is applied on lookup: the cache runs no goroutine of its own, and
// an expired entry holds its bytes only until eviction or its next lookup.
type responseCache struct {
	entries *otter.Cache[cacheKey, cached]
	ttl     time.Duration
	seedA   maphash.Seed
	seedB   maphash.Seed
	hits    atomic.Int64
	misses  atomic.Int64
	// hitNanos and missNanos are the cache's own time: the lookups that
	// answered, and the lookups and insertions around requests that ran.
	hitNanos, missNanos atomic.Int64
}

// entryOverhead is what an entry costs beyond its output bytes: the key,
// the tensors' headers and the cache's own node, roughly.
const entryOverhead = 256

func newResponseCache(cfg CacheConfig) (*responseCache, error) {
	entries, err := otter.New(&otter.Options[cacheKey, cached]{
		StatsRecorder: stats.NewCounter(), // for the evictions
		MaximumWeight: uint64(cfg.MaxBytes),
		Weigher: func(_ cacheKey, e cached) uint32 {
			n := entryOverhead
			for _, t := range e.outputs {
				n += len(t.Data) + len(t.Name) + 8*len(t.Shape) + 64
			}
			return uint32(min(n, 1<<31))
		},
	})
	if err != nil {
		return nil, err
	}
	return &responseCache{entries: entries, ttl: time.Duration(cfg.TTL), seedA: maphash.MakeSeed(), seedB: maphash.MakeSeed()}, nil
}

// get returns the outputs stored under key and still fresh.
func (c *responseCache) get(key cacheKey, now time.Time) ([]tensor.Tensor, bool) {
	e, ok := c.entries.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if c.ttl > 0 && now.Sub(e.stored) >= c.ttl {
		c.entries.Invalidate(key)
		return nil, false
	}
	return e.outputs, true
}

// digest hashes the model version, the inputs (name, datatype, shape,
// bytes) and the outputs asked for, in order.
func (c *responseCache) digest(meta Metadata, inputs []tensor.Tensor, outputs []string) cacheKey {
	var a, b maphash.Hash
	a.SetSeed(c.seedA)
	b.SetSeed(c.seedB)
	var num [8]byte
	write := func(p []byte) {
		_, _ = a.Write(p)
		_, _ = b.Write(p)
	}
	str := func(s string) {
		binary.LittleEndian.PutUint64(num[:], uint64(len(s)))
		write(num[:])
		_, _ = a.WriteString(s)
		_, _ = b.WriteString(s)
	}
	integer := func(v int64) {
		binary.LittleEndian.PutUint64(num[:], uint64(v))
		write(num[:])
	}
	str(meta.Name)
	integer(meta.Version)
	integer(int64(len(inputs)))
	for _, t := range inputs {
		str(t.Name)
		integer(int64(t.DataType))
		integer(int64(len(t.Shape)))
		for _, d := range t.Shape {
			integer(d)
		}
		integer(int64(len(t.Data)))
		write(t.Data)
	}
	integer(int64(len(outputs)))
	for _, o := range outputs {
		str(o)
	}
	return cacheKey{a.Sum64(), b.Sum64()}
}

// store keeps a copy of outputs: the response's own may share a batch's
// buffer, which the cache must neither pin nor see changed.
func (c *responseCache) store(key cacheKey, outputs []tensor.Tensor) {
	kept := make([]tensor.Tensor, len(outputs))
	for i, t := range outputs {
		kept[i] = tensor.Tensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64(nil), t.Shape...), Data: append([]byte(nil), t.Data...)}
	}
	c.entries.Set(key, cached{outputs: kept, stored: time.Now()})
}

// CacheStats counts a response cache's lookups, and the time it took.
type CacheStats struct {
	Hits, Misses       int64
	HitTime, MissTime  time.Duration
	Entries            int
	Bytes              int64
	Evictions, Evicted uint64 // entries evicted, and their bytes
}

func (c *responseCache) stats() CacheStats {
	c.entries.CleanUp() // apply pending writes, so the sizes are current
	s := c.entries.Stats()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(),
		HitTime: time.Duration(c.hitNanos.Load()), MissTime: time.Duration(c.missNanos.Load()),
		Entries: c.entries.EstimatedSize(), Bytes: int64(c.entries.WeightedSize()),
		Evictions: s.Evictions, Evicted: s.EvictionWeight}
}

// inferCached answers req from the cache, or runs it and keeps the
// answer. Hits skip the queue; their responses share the cached tensors,
// which nobody may change.
func (m *Model) inferCached(ctx context.Context, req *Request) (*Response, error) {
	c := m.cache
	start := time.Now()
	key := c.digest(m.served, req.Inputs, req.Outputs)
	if out, ok := c.get(key, start); ok {
		took := time.Since(start)
		c.hits.Add(1)
		c.hitNanos.Add(int64(took))
		m.stats.success.Add(1)
		resp := &Response{ModelName: m.meta.Name, ModelVersion: m.meta.Version, ID: req.ID, Outputs: out, FromCache: true}
		resp.Timing.Set(profile.Cache, took)
		return resp, nil
	}
	lookup := time.Since(start)
	resp, err := m.inferText(ctx, req)
	if err != nil {
		return nil, err
	}
	insert := time.Now()
	c.store(key, resp.Outputs)
	took := lookup + time.Since(insert)
	c.misses.Add(1)
	c.missNanos.Add(int64(took))
	resp.Timing.Set(profile.Cache, took)
	return resp, nil
}

// byString returns req's text when m caches by string and req is a
// well-formed text-only request; others go through the whole-request
// path, which also explains what is wrong with them.
func (m *Model) byString(req *Request) (tensor.Tensor, bool) {
	if !m.perString || len(req.Inputs) != 1 {
		return tensor.Tensor{}, false
	}
	text := req.Inputs[0]
	if text.Name != m.text.cfg.Input || text.DataType != tensor.Bytes || text.Validate() != nil ||
		!(len(text.Shape) == 1 || len(text.Shape) == 2 && text.Shape[1] == 1) || text.Shape[0] < 1 {
		return tensor.Tensor{}, false
	}
	return text, true
}

// splitStrings returns each string of BYTES data with its length prefix.
func splitStrings(data []byte, n int) [][]byte {
	out := make([][]byte, n)
	for r := range out {
		end := 4 + binary.LittleEndian.Uint32(data)
		out[r], data = data[:end], data[end:]
	}
	return out
}

// stringKeys returns the cache key of each string of text, alone.
func (c *responseCache) stringKeys(meta Metadata, text tensor.Tensor, strs [][]byte, outputs []string) []cacheKey {
	keys := make([]cacheKey, len(strs))
	for r, str := range strs {
		one := tensor.Tensor{Name: text.Name, DataType: tensor.Bytes, Shape: []int64{1}, Data: str}
		keys[r] = c.digest(meta, []tensor.Tensor{one}, outputs)
	}
	return keys
}

// joinRows stacks each output's one-row answers, in order.
func joinRows(found [][]tensor.Tensor) []tensor.Tensor {
	rows := len(found)
	out := make([]tensor.Tensor, len(found[0]))
	for k, t := range found[0] {
		o := tensor.Tensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64{int64(rows)}, t.Shape[1:]...),
			Data: make([]byte, 0, len(t.Data)*rows)}
		for r := range rows {
			o.Data = append(o.Data, found[r][k].Data...)
		}
		out[k] = o
	}
	return out
}

// inferStrings serves a text model whose only input is its text through
// a cache of one entry per string: the strings found are not encoded
// again, the rest (each distinct one once) run as one request, and the
// answer is assembled row by row in the request's order.
func (m *Model) inferStrings(ctx context.Context, req *Request, text tensor.Tensor) (*Response, error) {
	c := m.cache
	start := time.Now()
	rows := int(text.Shape[0])
	strs := splitStrings(text.Data, rows)
	keys := c.stringKeys(m.served, text, strs, req.Outputs)
	found := make([][]tensor.Tensor, rows)
	var missing []int // first row of each distinct string not cached
	firstOf := map[cacheKey]int{}
	for r, key := range keys {
		if out, ok := c.get(key, start); ok {
			found[r] = out
			continue
		}
		if _, ok := firstOf[key]; !ok {
			firstOf[key] = r
			missing = append(missing, r)
		}
	}
	lookup := time.Since(start)

	resp := &Response{ModelName: m.meta.Name, ModelVersion: m.meta.Version, ID: req.ID}
	if len(missing) > 0 {
		// Run each distinct missing string once, in one request.
		var sub []byte
		for _, r := range missing {
			sub = append(sub, strs[r]...)
		}
		shape := append([]int64{int64(len(missing))}, text.Shape[1:]...)
		ran, err := m.inferText(ctx, &Request{ID: req.ID, Inputs: []tensor.Tensor{{Name: text.Name, DataType: tensor.Bytes, Shape: shape, Data: sub}},
			Outputs: req.Outputs, Priority: req.Priority})
		if err != nil {
			return nil, err
		}
		insert := time.Now()
		for i, r := range missing {
			rowOut := make([]tensor.Tensor, len(ran.Outputs))
			for k, t := range ran.Outputs {
				rowOut[k] = rowOf(t, i, len(missing))
			}
			c.store(keys[r], rowOut)
			found[r] = rowOut
		}
		lookup += time.Since(insert)
		resp.Timing = ran.Timing
	}
	for r := range rows {
		if found[r] == nil {
			found[r] = found[firstOf[keys[r]]]
		}
	}
	resp.Outputs = joinRows(found)
	c.hits.Add(int64(rows - len(missing)))
	c.misses.Add(int64(len(missing)))
	if len(missing) == 0 {
		c.hitNanos.Add(int64(lookup))
		m.stats.success.Add(1)
		resp.FromCache = true
	} else {
		c.missNanos.Add(int64(lookup))
	}
	resp.Timing.Set(profile.Cache, lookup)
	return resp, nil
}

// rowOf returns row i of t, a tensor of rows rows, as a tensor of one.
func rowOf(t tensor.Tensor, i, rows int) tensor.Tensor {
	size := len(t.Data) / rows
	return tensor.Tensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64{1}, t.Shape[1:]...),
		Data: append([]byte(nil), t.Data[i*size:(i+1)*size]...)}
}

// Cached returns the answer the response cache holds for req without
// running anything: ok is false when it holds none (or there is no
// cache). A fallback uses it while the model version is failing.
func (m *Model) Cached(req *Request) (*Response, bool) {
	c := m.cache
	if c == nil {
		return nil, false
	}
	start := time.Now()
	resp := &Response{ModelName: m.meta.Name, ModelVersion: m.meta.Version, ID: req.ID, FromCache: true}
	if text, ok := m.byString(req); ok {
		strs := splitStrings(text.Data, int(text.Shape[0]))
		found := make([][]tensor.Tensor, len(strs))
		for r, key := range c.stringKeys(m.served, text, strs, req.Outputs) {
			if found[r], ok = c.get(key, start); !ok {
				return nil, false
			}
		}
		resp.Outputs = joinRows(found)
	} else {
		out, ok := c.get(c.digest(m.served, req.Inputs, req.Outputs), start)
		if !ok {
			return nil, false
		}
		resp.Outputs = out
	}
	resp.Timing.Set(profile.Cache, time.Since(start))
	return resp, true
}
