package generate

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// TestStreamNeverWaitsForItsReader sends a sequence's tokens while its
// reader takes none, then with the reader taking them as they come: every
// token arrives once, in order, the last one ends the stream, and the
// sender never blocked.
func TestStreamNeverWaitsForItsReader(t *testing.T) {
	const n = 10_000
	s := newStream()
	for i := range n {
		s.send(Token{Index: i}, false)
	}
	s.send(Token{Index: n, Finish: "length"}, true)
	check := func(s *Stream) {
		t.Helper()
		i := 0
		for tok := range s.All() {
			if tok.Index != i {
				t.Fatalf("token %d came as %d", i, tok.Index)
			}
			i++
		}
		if i != n+1 {
			t.Fatalf("%d tokens, want %d", i, n+1)
		}
		if _, ok := s.Next(); ok {
			t.Fatal("a token after the last")
		}
	}
	check(s)

	s = newStream()
	var wg sync.WaitGroup
	wg.Go(func() { check(s) })
	for i := range n {
		s.send(Token{Index: i}, false)
		if i%100 == 0 {
			runtime.Gosched() // let the reader catch up now and then
		}
	}
	s.send(Token{Index: n, Finish: "length"}, true)
	wg.Wait()
}

// TestStreamKeepsWhatIsUnread has a reader that stays a few tokens
// behind for a long sequence: the list holds about what is unread, not
// every token made (it grew with the sequence when it was only reused
// once the reader caught up, which such a reader never does).
func TestStreamKeepsWhatIsUnread(t *testing.T) {
	const n, behind = 100_000, 5
	s := newStream()
	for i := range n {
		s.send(Token{Index: i}, i == n-1)
		if i < behind {
			continue
		}
		tok, ok := s.Next()
		if !ok || tok.Index != i-behind {
			t.Fatalf("after sending %d: got token %d (%v), want %d", i, tok.Index, ok, i-behind)
		}
		if c := cap(s.queue); c > 64 {
			t.Fatalf("after sending %d with %d unread: the list holds %d tokens", i, len(s.queue)-s.head, c)
		}
	}
	for i := n - behind; i < n; i++ {
		if tok, ok := s.Next(); !ok || tok.Index != i {
			t.Fatalf("draining: got token %d (%v), want %d", tok.Index, ok, i)
		}
	}
	if _, ok := s.Next(); ok {
		t.Fatal("a token after the last")
	}
}

// TestGenerateReservesNothingForMaxTokens asks for four million tokens:
// the sequence's stream must not be sized for them up front (it was a
// buffered channel of max tokens, ~400 MB for this request, allocated
// before the engine even looked at it).
func TestGenerateReservesNothingForMaxTokens(t *testing.T) {
	d := loadTinyGPT(t)
	// The key/value budget's books grow as blocks are taken: a large
	// budget costs nothing until sequences are admitted.
	e := newEngine(t, d, EngineOptions{MaxBatch: 1, KVBytes: 1 << 42, MaxPositions: 1 << 23})
	e.Close() // the request is refused after it is built: nothing is admitted
	r := prompts(1)[0]
	r.MaxTokens = 1 << 22
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := e.Generate(context.Background(), r)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, runner.ErrClosed) {
		t.Fatalf("Generate on a closed engine: %v, want ErrClosed", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("a request for %d tokens allocated %d bytes before it was queued", r.MaxTokens, got)
	}
}
