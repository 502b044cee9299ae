package generate

import "sync/atomic"

// GenerateRequest is one sequence to generate.
type GenerateRequest struct {
	Prompt    []int64
	MaxTokens int
	// Temperature 0 is greedy; otherwise sampling from the top TopK
	// tokens (0: all) within probability mass TopP (0 or 1: all), with a
	// random source seeded by Seed.
	Temperature float64
	TopK        int
	TopP        float64
	Seed        uint64
	// Logprobs asks for each token's log-probability under the model (its
	// logits' log-softmax, before temperature, bias and penalties), and
	// TopLogprobs for the most likely tokens at each position (0 to
	// MaxTopLogprobs).
	Logprobs    bool
	TopLogprobs int
	// LogitBias is added to its token ids' logits before sampling.
	LogitBias map[int64]float32
	// PresencePenalty is subtracted from the logit of every token already
	// generated, FrequencyPenalty once for every time it was.
	PresencePenalty, FrequencyPenalty float64
	// Group is the client request the sequence is one of (NewGroup; 0: a
	// request of its own). While sequences wait, each admission goes to
	// the group with the fewest sequences admitted, the earliest first
	// among equals: one request of many sequences (n, best_of, a list of
	// prompts) takes its share of the slots, not all of them ahead of a
	// request that came after it.
	Group uint64
}

// groups numbers the client requests (NewGroup), and the sequences
// submitted without one, each its own.
var groups atomic.Uint64

// NewGroup returns a group for the sequences of one client request.
func NewGroup() uint64 { return groups.Add(1) }

// MaxTopLogprobs is the most alternatives a token's log-probabilities
// list (OpenAI's bound).
const MaxTopLogprobs = 20
