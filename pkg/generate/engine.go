// Package generate is infer's text-generation engine: iteration-level
// (continuous) or static batching of sequences on a key/value-cached
// decoder, key/value memory in blocks with a prefix cache, sampling with
// log-probabilities, and the session that turns tokens into text with
// incremental detokenisation and stop sequences. The runtime session it
// runs on (in process or in a model host) is package runner's Decoder;
// the front ends (OpenAI, Triton generate, KServe v2 BYTES) only
// translate to a Session and back, as vLLM keeps its engine apart from
// its API server.
package generate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

// Scheduling is how an Engine batches sequences.
type Scheduling int

const (
	// Continuous batching (iteration-level scheduling, as in Orca and
	// vLLM): a sequence joins the running batch the step a slot and its
	// memory are free, and leaves it the step it finishes.
	Continuous Scheduling = iota
	// Static batching: a batch is formed when none runs, of MaxBatch
	// sequences (or fewer once the first has waited BatchWait), and runs
	// until its longest sequence ends; finished sequences keep their slots.
	Static
)

// EngineOptions shape an Engine.
type EngineOptions struct {
	Scheduling Scheduling
	// MaxBatch is the most sequences decoded together (1: no batching).
	MaxBatch int
	// BatchWait is how long static batching waits for a full batch.
	BatchWait time.Duration
	// KVBytes is the key/value cache's memory budget: sequences wait for
	// admission while their prompt and max tokens do not fit.
	KVBytes int64
	// PrefixCache reuses the key/value blocks of prompt prefixes seen
	// before.
	PrefixCache bool
	// EOS ends a sequence when generated (-1: none).
	EOS int64
	// MaxPositions is the model's context length.
	MaxPositions int
}

// EngineStats is a snapshot of an engine's counters.
type EngineStats struct {
	// Running are decoded each step; Prefilled have their first token
	// and wait for a slot (continuous batching); Waiting are not admitted.
	Running, Prefilled, Waiting int
	KVBlocks, KVBlocksUsed      int
	KVBytesUsed                 int64
	PromptTokens, OutputTokens  int64
	PrefixHits, PrefixLookups   int64 // blocks
	Steps                       int64
}

// Engine generates sequences on a Decoder, batching them.
type Engine struct {
	dec    *runner.Decoder
	o      EngineOptions
	pool   *kvPool
	submit chan *sequence
	stop   context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex // guards stats
	stats EngineStats
	// sendMu orders submissions before Close's final sweep of the queue.
	sendMu sync.RWMutex
	closed bool
	live   atomic.Int64 // sequences submitted and not finished

	// Buffers the loop reuses from step to step.
	past [][]float32
	out  runner.ForwardResult
}

type sequence struct {
	ctx      context.Context
	req      GenerateRequest
	tokens   []int64 // prompt, then generated
	prompt   int
	blocks   []int
	kv       int     // positions in the cache
	shared   int     // leading blocks shared through the prefix cache
	out      *Stream // nil once finished
	rng      *rand.Rand
	queued   time.Time
	finished bool // static batching keeps finished sequences in the batch
}

// ErrTooLong means a prompt and its max tokens exceed the context or the
// whole key/value budget.
var ErrTooLong = errors.New("sequence too long")

// NewEngine starts an engine on dec; Close stops it.
func NewEngine(dec *runner.Decoder, o EngineOptions) (*Engine, error) {
	if o.MaxBatch < 1 {
		return nil, fmt.Errorf("engine: max batch %d, want at least 1", o.MaxBatch)
	}
	if o.MaxPositions < 2 {
		return nil, fmt.Errorf("engine: max positions %d, want at least 2", o.MaxPositions)
	}
	pool := newKVPool(dec.Layers, dec.Heads, dec.HeadDim, DefaultKVBlockTokens, o.KVBytes)
	if pool.capacity() < 1 {
		return nil, fmt.Errorf("engine: a key/value budget of %d bytes holds no block of %d", o.KVBytes, 4*pool.blockFloats)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{dec: dec, o: o, pool: pool, submit: make(chan *sequence, 1024), stop: cancel, done: make(chan struct{})}
	go e.loop(ctx)
	return e, nil
}

// Generate queues req and returns its tokens as they are made, the last
// carrying Finish. Cancelling ctx ends the sequence at its next step. It
// fails with runner.ErrInvalidInput for an empty prompt, max tokens under
// one or a token outside the vocabulary, ErrTooLong for a sequence the
// context or the key/value budget cannot hold, and runner.ErrClosed once
// the engine is closed.
func (e *Engine) Generate(ctx context.Context, req GenerateRequest) (*Stream, error) {
	if len(req.Prompt) == 0 {
		return nil, fmt.Errorf("%w: an empty prompt", runner.ErrInvalidInput)
	}
	if req.MaxTokens < 1 {
		return nil, fmt.Errorf("%w: max tokens %d, want at least 1", runner.ErrInvalidInput, req.MaxTokens)
	}
	if req.MaxTokens > e.o.MaxPositions-len(req.Prompt) { // a sum could overflow: max_tokens comes from clients
		return nil, fmt.Errorf("%w: %d prompt tokens and %d to generate exceed the context of %d", ErrTooLong, len(req.Prompt), req.MaxTokens, e.o.MaxPositions)
	}
	if need := e.pool.blocksFor(len(req.Prompt) + req.MaxTokens); need > e.pool.capacity() {
		return nil, fmt.Errorf("%w: it needs %d key/value blocks, the budget holds %d", ErrTooLong, need, e.pool.capacity())
	}
	for _, t := range req.Prompt {
		if t < 0 || t >= int64(e.dec.Vocab) {
			return nil, fmt.Errorf("%w: token %d is outside the vocabulary of %d", runner.ErrInvalidInput, t, e.dec.Vocab)
		}
	}
	if req.Group == 0 {
		req.Group = NewGroup()
	}
	s := &sequence{ctx: ctx, req: req, tokens: slices.Clone(req.Prompt), prompt: len(req.Prompt),
		queued: time.Now(), out: newStream(), rng: rand.New(rand.NewPCG(req.Seed, req.Seed^0x9e3779b97f4a7c15))}
	out := s.out // the engine owns s once it is sent
	e.sendMu.RLock()
	defer e.sendMu.RUnlock()
	if e.closed {
		return nil, runner.ErrClosed
	}
	e.live.Add(1) // before the loop can see it, so that Drain waits for it
	select {
	case e.submit <- s:
		return out, nil
	case <-e.done:
		e.live.Add(-1)
		return nil, runner.ErrClosed
	case <-ctx.Done():
		e.live.Add(-1)
		return nil, ctx.Err()
	}
}

func (e *Engine) loop(ctx context.Context) {
	defer close(e.done)
	// running are decoded each step; ready have been prefilled and wait
	// for a slot (continuous batching); waiting have not been admitted.
	var running, ready, waiting []*sequence
	defer func() {
		for _, s := range slices.Concat(running, ready, waiting) {
			e.finish(s, Token{Finish: "error", Err: runner.ErrClosed})
		}
	}()
	for {
		if len(running) == 0 && len(ready) == 0 && len(waiting) == 0 {
			e.setCounts(0, 0, 0) // idle: no count may stay from the last step
			select {
			case s := <-e.submit:
				waiting = append(waiting, s)
			case <-ctx.Done():
				return
			}
		}
	drain:
		for {
			select {
			case s := <-e.submit:
				waiting = append(waiting, s)
			case <-ctx.Done():
				return
			default:
				break drain
			}
		}
		// Withdraw the sequences whose callers left.
		left := func(s *sequence) bool {
			if s.ctx.Err() == nil {
				return false
			}
			e.finish(s, Token{Index: len(s.tokens) - s.prompt, Finish: "error", Err: s.ctx.Err()})
			e.free(s)
			return true
		}
		waiting = slices.DeleteFunc(waiting, left)
		ready = slices.DeleteFunc(ready, left)
		if len(running) == 0 && len(ready) == 0 && len(waiting) == 0 {
			continue
		}
		// Static batching waits for a full batch, for a while.
		if e.o.Scheduling == Static && len(running) == 0 && len(waiting) < e.o.MaxBatch {
			if wait := e.o.BatchWait - time.Since(waiting[0].queued); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case s := <-e.submit:
					waiting = append(waiting, s)
				case <-timer.C:
				case <-ctx.Done():
					timer.Stop()
					return
				}
				timer.Stop()
				continue
			}
		}
		// Admit while slots and memory allow: any step (continuous), or
		// only between batches (static).
		group := 0 // how many to admit and prefill together
		switch {
		case e.o.Scheduling == Continuous:
			// Prefilled sequences take the free slots first. When none is
			// left, the next group is prefilled in one pass: enough for
			// the free slots and a reserve for the slots the next steps
			// free, so that a sequence leaving does not cost a forward
			// pass of its own to replace.
			for len(ready) > 0 && len(running) < e.o.MaxBatch {
				running = append(running, ready[0])
				ready = ready[1:]
			}
			if len(ready) == 0 {
				group = e.o.MaxBatch - len(running) + e.o.MaxBatch/2
			}
		case len(running) == 0:
			group = e.o.MaxBatch
		}
		var admitted []*sequence
		if len(waiting) > 0 && group > 0 {
			share := shares(running, ready)
			for len(waiting) > 0 && len(admitted) < group {
				i := fairest(waiting, share)
				if !e.admit(waiting[i]) {
					break
				}
				share[waiting[i].req.Group]++
				admitted = append(admitted, waiting[i])
				waiting = slices.Delete(waiting, i, i+1)
			}
		}
		if len(admitted) > 0 {
			if err := e.prefill(admitted); err != nil {
				for _, s := range admitted {
					s.finished = true
					e.finish(s, Token{Finish: "error", Err: err})
				}
			}
			for _, s := range admitted {
				switch {
				case s.finished: // one token, an error, or a caller gone
					e.free(s)
				case len(running) < e.o.MaxBatch:
					running = append(running, s)
				default:
					ready = append(ready, s)
				}
			}
		}
		e.setCounts(len(running), len(ready), len(waiting))
		if len(running) == 0 {
			if len(admitted) == 0 && len(waiting) > 0 {
				// Nothing runs and the first waiter does not fit: that
				// cannot change, so it fails rather than waits forever.
				e.finish(waiting[0], Token{Finish: "error", Err: fmt.Errorf("%w: the key/value budget cannot hold it", ErrTooLong)})
				waiting = waiting[1:]
			}
			continue // else every admitted sequence ended at its first token
		}
		if err := e.decode(running); err != nil {
			for _, s := range running {
				if !s.finished {
					s.finished = true
					e.finish(s, Token{Finish: "error", Err: err})
				}
			}
		}
		// Retire: finished sequences leave at once (continuous), or with
		// the batch (static).
		if e.o.Scheduling == Continuous || !slices.ContainsFunc(running, func(s *sequence) bool { return !s.finished }) {
			running = slices.DeleteFunc(running, func(s *sequence) bool {
				if s.finished {
					e.free(s)
				}
				return s.finished
			})
		}
	}
}

// admit reserves s's memory for its prompt and max tokens, reusing cached
// prefix blocks; false when the budget cannot hold it now.
func (e *Engine) admit(s *sequence) bool {
	var shared []int
	var looked int
	if e.o.PrefixCache {
		shared, looked = e.pool.lookup(s.tokens)
	}
	need := e.pool.blocksFor(s.prompt+s.req.MaxTokens) - len(shared)
	fresh, ok := e.pool.alloc(need)
	if !ok {
		for _, b := range shared {
			e.pool.release(b)
		}
		return false
	}
	e.pool.hits += int64(len(shared))
	e.pool.lookups += int64(looked)
	s.blocks = append(shared, fresh...)
	s.shared = len(shared)
	s.kv = len(shared) * e.pool.blockTokens
	return true
}

// free gives s's blocks back, keeping its prompt's in the prefix cache
// once they hold the prompt's keys and values (not after a failed
// prefill).
func (e *Engine) free(s *sequence) {
	if e.o.PrefixCache && s.kv >= s.prompt {
		e.pool.remember(s.tokens[:s.prompt], s.blocks)
	}
	for _, b := range s.blocks {
		e.pool.release(b)
	}
	s.blocks = nil
}

// prefill runs the prompts of the sequences admitted together, past
// their cached prefixes, in one forward pass, and makes each one's first
// token. Rows are left-padded: each row's new tokens end the window, so
// that its last is the one whose logits come back; the mask hides the
// padding.
func (e *Engine) prefill(batch []*sequence) error {
	news, past := 1, 1 // a hidden position stands in for no past
	for _, s := range batch {
		news, past = max(news, s.prompt-s.kv), max(past, s.kv)
	}
	n := len(batch)
	f := &runner.Forward{Batch: n, News: news, Past: past, IDs: make([]int64, n*news), Pos: make([]int64, n*news),
		Mask: make([]int64, n*(past+news)), KV: e.pastBuffers(n, news, past)}
	for r, s := range batch {
		own := s.prompt - s.kv
		mask := f.Mask[r*(past+news):][:past+news]
		for i := range s.kv {
			mask[i] = 1
		}
		for t := news - own; t < news; t++ {
			k := s.kv + t - (news - own)
			f.IDs[r*news+t], f.Pos[r*news+t], mask[past+t] = s.tokens[k], int64(k), 1
		}
		e.pool.read(s.blocks, s.kv, f.KV, r, past)
	}
	res, err := e.dec.Run(f)
	if err != nil {
		return err
	}
	positions, first := e.dec.PresentWindow(past, news)
	for r, s := range batch {
		own := s.prompt - s.kv
		for i := range own {
			e.pool.write(s.blocks, s.kv+i, res.Present, r, positions, first+news-own+i)
		}
		cached := s.kv
		s.kv = s.prompt
		e.count(func(st *EngineStats) { st.PromptTokens += int64(own) })
		e.emit(s, e.sample(res.Logits[r*e.dec.Vocab:][:e.dec.Vocab], s), cached)
	}
	return nil
}

// decode runs one step of every sequence in the batch: each feeds its
// last token and gets its next.
func (e *Engine) decode(batch []*sequence) error {
	past := 1
	for _, s := range batch {
		past = max(past, s.kv)
	}
	n := len(batch)
	f := &runner.Forward{Batch: n, News: 1, Past: past, IDs: make([]int64, n), Pos: make([]int64, n),
		Mask: make([]int64, n*(past+1)), KV: e.pastBuffers(n, 1, past)}
	for r, s := range batch {
		f.IDs[r] = s.tokens[len(s.tokens)-1]
		f.Pos[r] = int64(min(s.kv, e.o.MaxPositions-1))
		row := f.Mask[r*(past+1):][:past+1]
		for i := range s.kv {
			row[i] = 1
		}
		row[past] = 1
		e.pool.read(s.blocks, s.kv, f.KV, r, past)
	}
	res, err := e.dec.Run(f, &e.out)
	if err != nil {
		return err
	}
	e.count(func(st *EngineStats) { st.Steps++ })
	positions, first := e.dec.PresentWindow(past, 1)
	for r, s := range batch {
		if s.finished {
			continue // static batching: the slot idles to the batch's end
		}
		if s.ctx.Err() != nil {
			s.finished = true
			e.finish(s, Token{Index: len(s.tokens) - s.prompt, Finish: "error", Err: s.ctx.Err()})
			continue
		}
		e.pool.write(s.blocks, s.kv, res.Present, r, positions, first)
		s.kv++
		e.emit(s, e.sample(res.Logits[r*e.dec.Vocab:][:e.dec.Vocab], s), -1)
	}
	return nil
}

// pastBuffers returns past tensors for rows sequences of past positions,
// reusing the loop's buffers. Positions a row does not fill hold stale,
// finite values that the mask hides.
func (e *Engine) pastBuffers(rows, news, past int) [][]float32 {
	kv := e.dec.PastBuffers(rows, news, past, e.past)
	if !e.dec.Hosted() { // in process: the arrays are the engine's
		e.past = kv // reused next pass
	}
	return kv
}

// emit appends the sampled token to s and sends it, ending s when it
// should end; cached is the prompt's cached part, on the first token
// (else -1).
func (e *Engine) emit(s *sequence, tok Token, cached int) {
	t := tok.ID
	s.tokens = append(s.tokens, t)
	tok.Index = len(s.tokens) - s.prompt - 1
	if cached >= 0 {
		tok.PromptTokens, tok.CachedTokens = s.prompt, cached
	}
	switch {
	case t == e.o.EOS:
		tok.Finish = "stop"
	case tok.Index+1 >= s.req.MaxTokens || len(s.tokens) >= e.o.MaxPositions:
		tok.Finish = "length"
	}
	e.count(func(st *EngineStats) { st.OutputTokens++ })
	if tok.Finish != "" {
		s.finished = true
		e.finish(s, tok)
		return
	}
	s.out.send(tok, false)
}
