package generate

import (
	"iter"
	"sync"
)

// Stream carries one sequence's tokens from the engine to its caller, in
// order, ending with the token that carries Finish. The engine never waits
// on it: tokens a slow reader has not taken queue in a list that grows as
// they are made, so a sequence costs memory for what it generated, not a
// buffer sized for its max tokens up front (a request asking for millions
// of tokens would otherwise reserve ~100 bytes for each before the first
// is made).
//
// One goroutine reads a Stream; the engine writes it.
type Stream struct {
	mu     sync.Mutex
	queue  []Token // made and not yet taken, from head
	head   int
	closed bool          // the last token is in queue
	ready  chan struct{} // holds a signal while queue has a token for Next
}

// Token is one generated token, or the end of a sequence.
type Token struct {
	ID    int64
	Index int // from 0
	// Finish is set on the last: "length" (max tokens or the context),
	// "stop" (EOS), or "error" with Err.
	Finish string
	Err    error
	// PromptTokens and CachedTokens count the prompt, and the part of it
	// the prefix cache held (on the first token).
	PromptTokens, CachedTokens int
	// Logprob is ID's log-probability and Top the most likely tokens, when
	// the request asked for them.
	Logprob float32
	Top     []TopToken
}

// TopToken is one of the most likely tokens at a position.
type TopToken struct {
	ID      int64
	Logprob float32
}

func newStream() *Stream {
	return &Stream{ready: make(chan struct{}, 1)}
}

// Next waits for the sequence's next token. It returns false once the
// token carrying Finish has been returned. To stop a sequence early,
// cancel the context it was submitted with: it then ends at its next step
// with an error token.
func (s *Stream) Next() (Token, bool) {
	for {
		s.mu.Lock()
		if s.head < len(s.queue) {
			tok := s.queue[s.head]
			s.queue[s.head] = Token{} // drop Err and Top for the collector
			s.head++
			if s.head == len(s.queue) { // caught up: reuse the list
				s.queue, s.head = s.queue[:0], 0
			}
			s.mu.Unlock()
			return tok, true
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Token{}, false
		}
		<-s.ready
	}
}

// All ranges over the tokens Next returns.
func (s *Stream) All() iter.Seq[Token] {
	return func(yield func(Token) bool) {
		for {
			tok, ok := s.Next()
			if !ok || !yield(tok) {
				return
			}
		}
	}
}

// send queues tok; last marks the end of the stream. Neither waits.
// When the list is full and its taken half is the larger, the unread
// tokens move to its front instead of the list growing: a reader that
// stays a few tokens behind holds a list of a few tokens, not one of
// every token made.
func (s *Stream) send(tok Token, last bool) {
	s.mu.Lock()
	if len(s.queue) == cap(s.queue) && s.head >= len(s.queue)/2 && s.head > 0 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, tok)
	s.closed = last
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default: // a wake-up is already pending
	}
}
