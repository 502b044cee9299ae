package generate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

var tinyGPTFile = filepath.Join(bundled, "tiny-gpt", "1", "model.onnx")

func loadTinyGPT(t testing.TB) *runner.Decoder {
	t.Helper()
	data, err := os.ReadFile(tinyGPTFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := runner.LoadDecoder("tiny-gpt", data, runner.Config{IntraOpThreads: 1, Isolation: os.Getenv("INFER_BENCH_ISOLATION")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func newEngine(t testing.TB, d *runner.Decoder, o EngineOptions) *Engine {
	t.Helper()
	if o.KVBytes == 0 {
		o.KVBytes = 64 << 20
	}
	if o.MaxPositions == 0 {
		o.MaxPositions = 512
	}
	if o.EOS == 0 {
		o.EOS = -1
	}
	e, err := NewEngine(d, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// prompts of varied lengths and output lengths, deterministic.
func prompts(n int) []GenerateRequest {
	var out []GenerateRequest
	for i := range n {
		p := make([]int64, 3+7*i%23)
		for j := range p {
			p[j] = int64(1000 + (i*131+j*17)%5000)
		}
		out = append(out, GenerateRequest{Prompt: p, MaxTokens: 4 + (i*11)%29})
	}
	return out
}

// collect generates every request at once and returns each one's tokens.
func collect(t testing.TB, e *Engine, reqs []GenerateRequest) [][]int64 {
	t.Helper()
	out := make([][]int64, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		ch, err := e.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for tok := range ch.All() {
				if tok.Err != nil {
					t.Errorf("request %d: %v", i, tok.Err)
					return
				}
				out[i] = append(out[i], tok.ID)
			}
		})
	}
	wg.Wait()
	return out
}

// The cache is right: a prompt's last token run on its cached past gives
// the logits of the whole prompt run at once.
func TestDecoderIncrementalMatchesWhole(t *testing.T) {
	d := loadTinyGPT(t)
	// The test's own pool and buffers: an engine's belong to its loop.
	pool := newKVPool(d.Layers, d.Heads, d.HeadDim, DefaultKVBlockTokens, 64<<20)
	e := &Engine{dec: d, pool: pool}
	prompt := prompts(3)[2].Prompt
	whole := &sequence{tokens: prompt, prompt: len(prompt)}
	logitsOf := func(s *sequence, upTo int) []float32 {
		blocks, _ := e.pool.alloc(e.pool.blocksFor(len(prompt)))
		defer func() {
			for _, b := range blocks {
				e.pool.release(b)
			}
		}()
		var last []float32
		for start := 0; start < len(s.tokens); start += upTo {
			n := min(upTo, len(s.tokens)-start)
			past := max(start, 1)
			f := &runner.Forward{Batch: 1, News: n, Past: past, IDs: s.tokens[start : start+n], Pos: make([]int64, n), Mask: make([]int64, past+n), KV: e.pastBuffers(1, n, past)}
			for i := range n {
				f.Pos[i], f.Mask[past+i] = int64(start+i), 1
			}
			for i := range start {
				f.Mask[i] = 1
			}
			e.pool.read(blocks, start, f.KV, 0, past)
			res, err := d.Run(f)
			if err != nil {
				t.Fatal(err)
			}
			positions, first := d.PresentWindow(past, n)
			for i := range n {
				e.pool.write(blocks, start+i, res.Present, 0, positions, first+i)
			}
			last = append(last[:0], res.Logits...) // res is valid until the next pass
		}
		return last
	}
	a, b := logitsOf(whole, len(prompt)), logitsOf(whole, 1)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-4 {
			t.Fatalf("logit %d: %v at once, %v a token at a time", i, a[i], b[i])
		}
	}
}

// Continuous batching gives every sequence, token for token, the greedy
// output it gets alone; so does static batching.
func TestContinuousBatchingMatchesAlone(t *testing.T) {
	d := loadTinyGPT(t)
	reqs := prompts(9)
	alone := make([][]int64, len(reqs))
	one := newEngine(t, d, EngineOptions{MaxBatch: 1})
	for i, r := range reqs {
		alone[i] = collect(t, one, []GenerateRequest{r})[0]
		if len(alone[i]) != r.MaxTokens {
			t.Fatalf("request %d: %d tokens, want %d", i, len(alone[i]), r.MaxTokens)
		}
	}
	for _, sched := range []Scheduling{Continuous, Static} {
		got := collect(t, newEngine(t, d, EngineOptions{MaxBatch: 4, Scheduling: sched}), reqs)
		for i := range reqs {
			if !slices.Equal(got[i], alone[i]) {
				t.Fatalf("scheduling %d, request %d:\n batched %v\n alone   %v", sched, i, got[i], alone[i])
			}
		}
	}
}

// A sequence that finishes early frees its slot the next step: a waiting
// sequence starts while the long one still runs.
func TestFinishedSequenceFreesItsSlot(t *testing.T) {
	d := loadTinyGPT(t)
	p := prompts(3)
	reqs := []GenerateRequest{{Prompt: p[0].Prompt, MaxTokens: 2}, {Prompt: p[1].Prompt, MaxTokens: 120}, {Prompt: p[2].Prompt, MaxTokens: 20}}
	steps := func(sched Scheduling) int64 {
		e := newEngine(t, d, EngineOptions{MaxBatch: 2, Scheduling: sched, BatchWait: 5 * time.Second})
		collect(t, e, reqs)
		return e.Stats().Steps
	}
	continuous, static := steps(Continuous), steps(Static)
	// Continuous: the third joins when the first leaves, and is done long
	// before the second: about 120 steps in all. Static: it waits for the
	// second: about 120 + 20.
	if continuous > 125 || static < 135 {
		t.Fatalf("decode steps: continuous %d (want about 120), static %d (want about 140)", continuous, static)
	}
}

// When the key/value budget is spent, sequences wait for memory instead
// of failing; one that could never fit fails at once.
func TestKVBudgetQueues(t *testing.T) {
	d := loadTinyGPT(t)
	blockBytes := int64(4 * d.Layers * 2 * d.Heads * DefaultKVBlockTokens * d.HeadDim)
	e := newEngine(t, d, EngineOptions{MaxBatch: 8, KVBytes: 4 * blockBytes}) // 64 positions
	reqs := []GenerateRequest{}
	for _, r := range prompts(6) {
		r.MaxTokens = 64 - len(r.Prompt) - 1 // each needs the whole budget
		reqs = append(reqs, r)
	}
	got := collect(t, e, reqs)
	for i, r := range reqs {
		if len(got[i]) != r.MaxTokens {
			t.Fatalf("request %d: %d tokens, want %d", i, len(got[i]), r.MaxTokens)
		}
	}
	if e.pool.inUseMax > 4 {
		t.Fatalf("%d blocks in use at once, over the budget of 4", e.pool.inUseMax)
	}
	if _, err := e.Generate(context.Background(), GenerateRequest{Prompt: make([]int64, 10), MaxTokens: 100}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a sequence over the whole budget: %v, want ErrTooLong", err)
	}
}

// The prefix cache reuses a shared prefix's blocks and changes no output.
func TestPrefixCacheSameOutput(t *testing.T) {
	d := loadTinyGPT(t)
	reqs := sharedPrefix(64, 4, 8)
	plain := newEngine(t, d, EngineOptions{MaxBatch: 4})
	cached := newEngine(t, d, EngineOptions{MaxBatch: 4, PrefixCache: true})
	want := [][]int64{}
	for _, r := range reqs {
		want = append(want, collect(t, plain, []GenerateRequest{r})[0])
	}
	for i, r := range reqs {
		got := collect(t, cached, []GenerateRequest{r})[0]
		if !slices.Equal(got, want[i]) {
			t.Fatalf("request %d: %v with the prefix cache, %v without", i, got, want[i])
		}
	}
	st := cached.Stats()
	if st.PrefixHits != 3*4 { // requests 2-4 each find the prefix's 4 blocks
		t.Fatalf("prefix cache: %d block hits of %d looked up, want 12", st.PrefixHits, st.PrefixLookups)
	}
}

// Sampling is reproducible by seed, and greedy at temperature 0.
func TestSamplingBySeed(t *testing.T) {
	d := loadTinyGPT(t)
	e := newEngine(t, d, EngineOptions{MaxBatch: 4})
	r := prompts(1)[0]
	r.MaxTokens, r.Temperature, r.TopK, r.TopP = 24, 1.0, 50, 0.9
	a, b := r, r
	a.Seed, b.Seed = 7, 8
	got := collect(t, e, []GenerateRequest{a, a, b})
	if !slices.Equal(got[0], got[1]) {
		t.Fatal("the same seed gave different tokens")
	}
	if slices.Equal(got[0], got[2]) {
		t.Fatal("different seeds gave the same 24 tokens")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := e.Generate(ctx, GenerateRequest{Prompt: r.Prompt, MaxTokens: 400})
	if err != nil {
		t.Fatal(err)
	}
	ch.Next()
	cancel()
	for {
		tok, ok := within(t, ch, 10*time.Second, "a cancelled sequence did not end")
		if !ok {
			return
		}
		if tok.Finish != "" && !errors.Is(tok.Err, context.Canceled) {
			t.Fatalf("a cancelled sequence ended with %q %v", tok.Finish, tok.Err)
		}
	}
}

// within returns s's next token, failing t with msg after d.
func within(t testing.TB, s *Stream, d time.Duration, msg string) (Token, bool) {
	t.Helper()
	type next struct {
		tok Token
		ok  bool
	}
	c := make(chan next, 1)
	go func() {
		tok, ok := s.Next()
		c <- next{tok, ok}
	}()
	select {
	case n := <-c:
		return n.tok, n.ok
	case <-time.After(d):
		t.Fatal(msg)
		return Token{}, false
	}
}

// BenchmarkGenerate runs request mixes of 192 requests (prompts of 3 to
// 25 tokens), all arriving at once, on the bundled decoder: continuous
// batching, static batching (full batches, each run to its longest
// sequence) and no batching, 16 sequences a batch (the default
// max_batch). 192 requests make twelve full static batches, so that the
// figures are those of serving rather than of draining the last batch.
// Output lengths are exponential with a mean of 32 tokens (4 to 160), as
// served traffic's roughly are, or uniform from 4 to 64. Then a long
// shared prefix, with and without the prefix cache. It reports output
// tokens/s and the p99 time to first token.
//
// BENCH_GENERATE_REQUESTS=48 runs a shorter mix.
func BenchmarkGenerate(b *testing.B) {
	d := loadTinyGPT(b)
	n := 192
	if v := os.Getenv("BENCH_GENERATE_REQUESTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("BENCH_GENERATE_REQUESTS=%q: want a number of requests, at least 1", v)
		}
	}
	exponential, uniform := prompts(n), prompts(n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range exponential {
		exponential[i].MaxTokens = min(160, 4+int(rng.ExpFloat64()*28))
		uniform[i].MaxTokens = 4 + (i*37)%61
	}
	run := func(b *testing.B, o EngineOptions, reqs []GenerateRequest) {
		var tokens int64
		var ttfts []time.Duration
		elapsed := time.Duration(0)
		for b.Loop() {
			e := newEngine(b, d, o)
			start := time.Now()
			var mu sync.Mutex
			var wg sync.WaitGroup
			for _, r := range reqs {
				submitted := time.Now()
				ch, err := e.Generate(context.Background(), r)
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					first := true
					for tok := range ch.All() {
						if tok.Err != nil {
							b.Error(tok.Err)
						}
						mu.Lock()
						if first {
							ttfts = append(ttfts, time.Since(submitted))
							first = false
						}
						tokens++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			elapsed += time.Since(start)
			e.Close()
		}
		b.ReportMetric(float64(tokens)/elapsed.Seconds(), "tokens/s")
		b.ReportMetric(quantileMs(ttfts, 0.99), "p99-ttft-ms")
	}
	for _, mix := range []struct {
		name string
		reqs []GenerateRequest
	}{{"exponential", exponential}, {"uniform", uniform}} {
		b.Run(mix.name+"/continuous", func(b *testing.B) { run(b, EngineOptions{MaxBatch: 16}, mix.reqs) })
		b.Run(mix.name+"/static", func(b *testing.B) {
			run(b, EngineOptions{MaxBatch: 16, Scheduling: Static, BatchWait: time.Second}, mix.reqs)
		})
		b.Run(mix.name+"/none", func(b *testing.B) { run(b, EngineOptions{MaxBatch: 1}, mix.reqs) })
	}

	shared := sharedPrefix(384, 16, 4)
	for _, cache := range []bool{false, true} {
		b.Run("shared-prefix/cache="+map[bool]string{false: "off", true: "on"}[cache], func(b *testing.B) {
			// The first request fills the cache; the rest arrive after it.
			o := EngineOptions{MaxBatch: 8, PrefixCache: cache}
			var ttfts []time.Duration
			for b.Loop() {
				e := newEngine(b, d, o)
				collect(b, e, shared[:1])
				for _, r := range shared[1:] {
					submitted := time.Now()
					ch, err := e.Generate(context.Background(), r)
					if err != nil {
						b.Fatal(err)
					}
					ch.Next()
					ttfts = append(ttfts, time.Since(submitted))
					for range ch.All() {
					}
				}
				e.Close()
			}
			b.ReportMetric(quantileMs(ttfts, 0.5), "p50-ttft-ms")
			b.ReportMetric(quantileMs(ttfts, 0.99), "p99-ttft-ms")
		})
	}
}

// sharedPrefix makes n prompts of the same prefix tokens and two of their
// own, each generating maxTokens.
func sharedPrefix(prefix, n, maxTokens int) []GenerateRequest {
	p := make([]int64, prefix)
	for i := range p {
		p[i] = int64(1500 + i*3)
	}
	var out []GenerateRequest
	for i := range n {
		out = append(out, GenerateRequest{Prompt: append(slices.Clone(p), int64(4000+i), int64(4100+i)), MaxTokens: maxTokens})
	}
	return out
}

// quantileMs returns the q-th quantile of ds (sorting them), in ms.
func quantileMs(ds []time.Duration, q float64) float64 {
	slices.Sort(ds)
	return float64(ds[max(int(math.Ceil(q*float64(len(ds))))-1, 0)].Microseconds()) / 1000
}

// Closing the engine ends every sequence, running or queued, with an
// error; later requests are refused.
func TestEngineCloseEndsEverySequence(t *testing.T) {
	d := loadTinyGPT(t)
	e, err := NewEngine(d, EngineOptions{MaxBatch: 1, KVBytes: 64 << 20, MaxPositions: 512, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	var chans []*Stream
	for _, r := range prompts(6) {
		r.MaxTokens = 300
		ch, err := e.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	chans[0].Next()
	e.Close()
	for i, ch := range chans {
		var last Token
		for tok := range ch.All() {
			last = tok
		}
		if !errors.Is(last.Err, runner.ErrClosed) {
			t.Fatalf("sequence %d ended with %q %v, want ErrClosed", i, last.Finish, last.Err)
		}
	}
	if _, err := e.Generate(context.Background(), prompts(1)[0]); !errors.Is(err, runner.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// argmax finds the first of the largest, as a plain scan does, at every
// length and with ties across its four lanes.
func TestArgmax(t *testing.T) {
	plain := func(xs []float32) int {
		best := 0
		for i, v := range xs {
			if v > xs[best] {
				best = i
			}
		}
		return best
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 40 {
		for range 50 {
			xs := make([]float32, n)
			for i := range xs {
				xs[i] = float32(rng.IntN(5)) // many ties
			}
			if got, want := argmax(xs), plain(xs); got != want {
				t.Fatalf("argmax(%v) = %d, want %d", xs, got, want)
			}
		}
	}
	inf := float32(math.Inf(-1))
	if got := argmax([]float32{inf, inf, inf, inf, inf}); got != 0 {
		t.Fatalf("all -Inf: %d, want 0", got)
	}
}

func loadVariant(t testing.TB, file string) *runner.Decoder {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", file))
	if err != nil {
		t.Fatal(err)
	}
	// INFER_BENCH_ISOLATION=none|process compares where the decoder runs.
	d, err := runner.LoadDecoder(file, data, runner.Config{IntraOpThreads: 1, Isolation: os.Getenv("INFER_BENCH_ISOLATION")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// BenchmarkDecoderStep times one decode step of 16 rows at a past of 64
// and 256 positions, for the same decoder returning the whole present and
// returning only the new keys and values.
func BenchmarkDecoderStep(b *testing.B) {
	for _, layout := range []string{"present", "new"} {
		d := loadVariant(b, "tiny-gpt-512-"+layout+".onnx")
		for _, past := range []int{64, 256} {
			b.Run(fmt.Sprintf("%s/past=%d", layout, past), func(b *testing.B) {
				const rows = 16
				f := &runner.Forward{Batch: rows, News: 1, Past: past, IDs: make([]int64, rows), Pos: make([]int64, rows), Mask: make([]int64, rows*(past+1))}
				for i := range f.Mask {
					f.Mask[i] = 1
				}
				var out runner.ForwardResult
				for b.Loop() {
					f.KV = d.PastBuffers(rows, 1, past, f.KV) // where the engine's pass reads them
					if _, err := d.Run(f, &out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A decoder that returns the whole present (past and new keys and values)
// and one that returns only the new ones generate the same tokens.
func TestDecoderPresentLayouts(t *testing.T) {
	full, fresh := loadVariant(t, "tiny-gpt-512-present.onnx"), loadVariant(t, "tiny-gpt-512-new.onnx")
	if a, _ := full.PresentWindow(5, 1); a != 6 {
		t.Fatalf("the present layout returns %d positions after a past of 5, want 6", a)
	}
	if b, _ := fresh.PresentWindow(5, 1); b != 1 {
		t.Fatalf("the new-only layout returns %d positions, want 1", b)
	}
	reqs := prompts(8)
	for i := range reqs {
		for j := range reqs[i].Prompt {
			reqs[i].Prompt[j] %= 512
		}
		reqs[i].MaxTokens = 12 + 5*i
	}
	want := collect(t, newEngine(t, full, EngineOptions{MaxBatch: 4}), reqs)
	got := collect(t, newEngine(t, fresh, EngineOptions{MaxBatch: 4}), reqs)
	for i := range reqs {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("request %d:\n new-only %v\n present  %v", i, got[i], want[i])
		}
	}
}

// Continuous batching prefills a group ahead of the free slots: those
// sequences have their first token at once, wait for a slot, and, when
// their caller leaves while they wait, end and give their memory back.
func TestPrefilledAheadWaitForASlot(t *testing.T) {
	d := loadTinyGPT(t)
	e := newEngine(t, d, EngineOptions{MaxBatch: 2})
	reqs := prompts(4)
	var chans []*Stream
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first two run long, so that what the check below reads cannot
	// include one of them finishing, however late the test goroutine is
	// scheduled: the engine queues tokens on their streams and goes on.
	const long, short = 400, 60
	for i, r := range reqs {
		r.MaxTokens = short
		if i < 2 {
			r.MaxTokens = long
		}
		c := context.Background()
		if i == 2 {
			c = ctx
		}
		ch, err := e.Generate(c, r)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	// Two run and one more is prefilled ahead (a reserve of half the
	// batch): the third has its first token while the first two decode.
	tok, _ := within(t, chans[2], 10*time.Second, "the sequence prefilled ahead had no first token")
	if tok.Err != nil || tok.Index != 0 {
		t.Fatalf("third sequence's first token: %+v", tok)
	}
	if made := e.Stats().OutputTokens; made >= long {
		t.Fatalf("the third sequence's first token came after %d tokens: it waited for a slot to free", made)
	}
	// The counts are taken after the prefill that made the token.
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		st := e.Stats()
		if st.Running > 2 {
			t.Fatalf("%d running, over the batch of 2", st.Running)
		}
		if st.Running == 2 && st.Prefilled == 1 && st.Waiting == 1 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("running %d, prefilled %d, waiting %d: want 2, 1 and 1", st.Running, st.Prefilled, st.Waiting)
		}
	}
	cancel()
	var last Token
	for tok := range chans[2].All() {
		last = tok
	}
	if !errors.Is(last.Err, context.Canceled) {
		t.Fatalf("the cancelled sequence ended with %q %v", last.Finish, last.Err)
	}
	for i, ch := range chans {
		if i == 2 {
			continue
		}
		n := 0
		for tok := range ch.All() {
			if tok.Err != nil {
				t.Fatalf("sequence %d: %v", i, tok.Err)
			}
			n++
		}
		want := short
		if i < 2 {
			want = long
		}
		if n != want {
			t.Fatalf("sequence %d: %d tokens, want %d", i, n, want)
		}
	}
	// Idle, the counts say so.
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		if st := e.Stats(); st.Running+st.Prefilled+st.Waiting == 0 {
			break
		} else if time.Since(start) > 5*time.Second {
			t.Fatalf("idle engine counts %d running, %d prefilled, %d waiting", st.Running, st.Prefilled, st.Waiting)
		}
	}
	e.Close()
	if used := e.pool.inUse(); used != 0 {
		t.Fatalf("%d key/value blocks still in use after every sequence ended", used)
	}
}

// A static batch's only caller leaving while it waits for the batch to
// fill leaves the engine serving.
func TestStaticWaitOutlivesItsCaller(t *testing.T) {
	d := loadTinyGPT(t)
	e := newEngine(t, d, EngineOptions{MaxBatch: 4, Scheduling: Static, BatchWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := e.Generate(ctx, prompts(1)[0])
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for tok := range ch.All() {
		if tok.Finish != "" && !errors.Is(tok.Err, context.Canceled) {
			t.Fatalf("the cancelled sequence ended with %q %v", tok.Finish, tok.Err)
		}
	}
	r := prompts(2)[1]
	if got := collect(t, e, []GenerateRequest{r})[0]; len(got) != r.MaxTokens {
		t.Fatalf("after a caller left: %d tokens, want %d", len(got), r.MaxTokens)
	}
}

// The pool's books grow with the blocks taken, not with its budget: a
// budget of a petabyte costs nothing until blocks are taken, gives
// fresh blocks, takes back released ones first, and evicts a cached
// block only with no block left to take.
func TestKVPoolGrowsWithUse(t *testing.T) {
	big := newKVPool(2, 2, 4, 4, 1<<50)
	if big.capacity() < 1<<30 || len(big.blocks) != 0 || len(big.refs) != 0 {
		t.Fatalf("a petabyte's pool: capacity %d, %d blocks and %d counts kept before any use", big.capacity(), len(big.blocks), len(big.refs))
	}
	got, ok := big.alloc(3)
	if !ok || len(big.blocks) != 3 || big.inUse() != 3 {
		t.Fatalf("3 blocks taken: %v %v, %d kept, %d in use", got, ok, len(big.blocks), big.inUse())
	}

	small := newKVPool(1, 1, 1, 1, 3*4*2) // three blocks of 2 floats
	a, _ := small.alloc(2)
	small.release(a[1])
	b, ok := small.alloc(2) // the released one, then the last fresh one
	if !ok || b[0] != a[1] || b[1] != 2 || small.inUse() != 3 {
		t.Fatalf("after a release: %v %v, in use %d; want [%d 2], 3", b, ok, small.inUse(), a[1])
	}
	if _, ok := small.alloc(1); ok {
		t.Fatal("a block past the budget was given")
	}
}

// Drain, what an unload uses, lets the sequences submitted finish before
// the engine stops: each ends with its length, not with an error; a
// submission after it is refused.
func TestDrainFinishesWhatWasSubmitted(t *testing.T) {
	d := loadTinyGPT(t)
	e, err := NewEngine(d, EngineOptions{MaxBatch: 2, KVBytes: 64 << 20, MaxPositions: 512, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	var outs []*Stream
	for _, r := range prompts(4) {
		r.MaxTokens = 40
		out, err := e.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	e.Drain(time.Minute)
	for i, out := range outs {
		var last Token
		n := 0
		for tok := range out.All() {
			last = tok
			n++
		}
		if last.Finish != "length" || n != 40 {
			t.Errorf("sequence %d: %d tokens ending %q (%v), want 40 ending length", i, n, last.Finish, last.Err)
		}
	}
	if _, err := e.Generate(context.Background(), prompts(1)[0]); !errors.Is(err, runner.ErrClosed) {
		t.Fatalf("a submission after the drain: %v, want ErrClosed", err)
	}
}

// TestDrainWaitsForWhatTheLoopHolds drains the moment a sequence is
// submitted: the loop may have taken it from the queue and not yet
// counted it (it counts after the prefill), and it must still finish.
func TestDrainWaitsForWhatTheLoopHolds(t *testing.T) {
	d := loadTinyGPT(t)
	for i := range 30 {
		e, err := NewEngine(d, EngineOptions{MaxBatch: 2, KVBytes: 64 << 20, MaxPositions: 512, EOS: -1})
		if err != nil {
			t.Fatal(err)
		}
		r := prompts(1)[0]
		r.MaxTokens = 8
		out, err := e.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		e.Drain(time.Minute)
		var last Token
		n := 0
		for tok := range out.All() {
			last, n = tok, n+1
		}
		if last.Finish != "length" || n != 8 {
			t.Fatalf("drain %d: %d tokens ending %q (%v), want 8 ending length", i, n, last.Finish, last.Err)
		}
	}
}
