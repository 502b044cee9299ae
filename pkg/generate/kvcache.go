package generate

import (
	"encoding/binary"
	"hash/maphash"
	"math"
)

// DefaultKVBlockTokens is the positions one key/value block holds.
const DefaultKVBlockTokens = 16

// kvPool holds the key/value cache of every running sequence in blocks of
// blockTokens positions, within a budget of blocks, as vLLM's paged memory
// manager does. Blocks are reference counted so that sequences sharing a
// prompt prefix share its blocks; the prefix cache keeps full blocks of
// finished prompts by the hash of every token up to their end, and gives
// them back, least recently used first, when the pool runs short. It is
// owned by one engine goroutine and not safe for concurrent use.
type kvPool struct {
	layers, heads, headDim, blockTokens int
	blockFloats                         int
	limit                               int         // blocks the budget holds
	blocks                              [][]float32 // those taken at least once, allocated on first use
	refs                                []int
	free                                []int
	// The prefix cache: block by the hash of the tokens up to its end,
	// each cached block's hash, and when it was last used.
	cached   map[uint64]int
	hashOf   map[int]uint64
	lastUse  map[int]int64
	clock    int64
	seed     maphash.Seed
	hits     int64 // prompt blocks found in the prefix cache
	lookups  int64 // full prompt blocks looked up
	inUseMax int
}

func newKVPool(layers, heads, headDim, blockTokens int, budgetBytes int64) *kvPool {
	p := &kvPool{layers: layers, heads: heads, headDim: headDim, blockTokens: blockTokens,
		blockFloats: layers * 2 * heads * blockTokens * headDim,
		cached:      map[uint64]int{}, hashOf: map[int]uint64{}, lastUse: map[int]int64{}, seed: maphash.MakeSeed()}
	// The pool's own books grow with the blocks taken, not with the
	// budget: a budget far over what is ever used costs nothing.
	p.limit = int(min(budgetBytes/int64(4*p.blockFloats), math.MaxInt32))
	return p
}

// capacity is the number of blocks the budget holds.
func (p *kvPool) capacity() int { return p.limit }

// positions is how many positions the whole budget holds: the longest
// sequence it could ever run.
func (p *kvPool) positions() int { return p.limit * p.blockTokens }

// inUse counts the blocks held by sequences or the prefix cache.
func (p *kvPool) inUse() int { return len(p.blocks) - len(p.free) }

// evictable counts cached blocks no sequence holds.
func (p *kvPool) evictable() int {
	n := 0
	for b := range p.hashOf {
		if p.refs[b] == 1 {
			n++
		}
	}
	return n
}

// blocksFor returns the blocks n positions need.
func (p *kvPool) blocksFor(n int) int { return (n + p.blockTokens - 1) / p.blockTokens }

// prefixHashes returns the chained hash of each full block of tokens.
func (p *kvPool) prefixHashes(tokens []int64) []uint64 {
	var out []uint64
	var h maphash.Hash
	h.SetSeed(p.seed)
	var buf [8]byte
	for i, t := range tokens {
		binary.LittleEndian.PutUint64(buf[:], uint64(t))
		_, _ = h.Write(buf[:])
		if (i+1)%p.blockTokens == 0 {
			out = append(out, h.Sum64())
		}
	}
	return out
}

// lookup returns the cached blocks holding the longest prefix of tokens,
// taking a reference to each, leaving at least one token uncached (its
// logits are wanted), and the number of full blocks looked up.
func (p *kvPool) lookup(tokens []int64) ([]int, int) {
	hashes := p.prefixHashes(tokens[:len(tokens)-1])
	var out []int
	for _, h := range hashes {
		b, ok := p.cached[h]
		if !ok {
			break
		}
		p.refs[b]++
		p.clock++
		p.lastUse[b] = p.clock
		out = append(out, b)
	}
	return out, len(hashes)
}

// alloc takes n blocks, evicting cached ones no sequence holds as needed;
// ok is false (and nothing taken) when the budget cannot give n.
func (p *kvPool) alloc(n int) ([]int, bool) {
	if n > len(p.free)+(p.limit-len(p.blocks))+p.evictable() {
		return nil, false
	}
	out := make([]int, n)
	for i := range out {
		if len(p.free) == 0 {
			if len(p.blocks) < p.limit { // one never taken yet
				p.free = append(p.free, len(p.blocks))
				p.blocks = append(p.blocks, make([]float32, p.blockFloats))
				p.refs = append(p.refs, 0)
			} else {
				p.evictOldest()
			}
		}
		b := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.refs[b] = 1
		out[i] = b
	}
	p.inUseMax = max(p.inUseMax, p.inUse())
	return out, true
}

func (p *kvPool) evictOldest() {
	oldest, at := -1, int64(0)
	for b := range p.hashOf {
		if p.refs[b] == 1 && (oldest < 0 || p.lastUse[b] < at) {
			oldest, at = b, p.lastUse[b]
		}
	}
	if oldest < 0 {
		return
	}
	delete(p.cached, p.hashOf[oldest])
	delete(p.hashOf, oldest)
	delete(p.lastUse, oldest)
	p.release(oldest)
}

// release drops one reference to b.
func (p *kvPool) release(b int) {
	p.refs[b]--
	if p.refs[b] == 0 {
		p.free = append(p.free, b)
	}
}

// remember puts the full prompt blocks of a sequence in the prefix cache
// (which takes its own reference), by the hash of the tokens up to each.
func (p *kvPool) remember(prompt []int64, blocks []int) {
	for i, h := range p.prefixHashes(prompt) {
		if i >= len(blocks) {
			break
		}
		if _, ok := p.cached[h]; ok {
			continue
		}
		b := blocks[i]
		if _, ok := p.hashOf[b]; ok {
			continue
		}
		p.cached[h] = b
		p.hashOf[b] = h
		p.refs[b]++
		p.clock++
		p.lastUse[b] = p.clock
	}
}

// offset is where position slot of block's layer-kv plane and head start.
func (p *kvPool) offset(lkv, head, slot int) int {
	return ((lkv*p.heads+head)*p.blockTokens + slot) * p.headDim
}

// write stores, for position pos of a sequence with blocks, every
// layer's key and value of one row of a present output: src holds
// [rows, heads, positions, head_dim] per layer-kv, and the row's entry is
// at (row, at).
func (p *kvPool) write(blocks []int, pos int, present [][]float32, row, positions, at int) {
	blk := p.blocks[blocks[pos/p.blockTokens]]
	slot := pos % p.blockTokens
	for lkv, src := range present {
		for h := range p.heads {
			from := ((row*p.heads+h)*positions + at) * p.headDim
			copy(blk[p.offset(lkv, h, slot):][:p.headDim], src[from:from+p.headDim])
		}
	}
}

// read copies positions [0, n) of a sequence into row of past tensors
// [rows, heads, positions, head_dim] per layer-kv.
func (p *kvPool) read(blocks []int, n int, past [][]float32, row, positions int) {
	for pos := 0; pos < n; {
		blk := p.blocks[blocks[pos/p.blockTokens]]
		slot := pos % p.blockTokens
		run := min(p.blockTokens-slot, n-pos) // positions in this block
		for lkv, dst := range past {
			for h := range p.heads {
				to := ((row*p.heads+h)*positions + pos) * p.headDim
				copy(dst[to:to+run*p.headDim], blk[p.offset(lkv, h, slot):][:run*p.headDim])
			}
		}
		pos += run
	}
}
