package generate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// sample picks s's next token from a row of logits, with its
// log-probabilities when s asks for them. The row is the engine's buffer
// for this pass: bias and penalties are applied to it in place.
// Log-probabilities are the model's own (the raw logits' log-softmax),
// as OpenAI and vLLM report them, whatever the sampling settings.
func (e *Engine) sample(logits []float32, s *sequence) Token {
	r := s.req
	raw := logits
	if len(r.LogitBias) > 0 || r.PresencePenalty != 0 || r.FrequencyPenalty != 0 {
		if r.Logprobs {
			raw = slices.Clone(logits)
		}
		s.adjust(logits)
	}
	tok := Token{ID: pick(logits, r, s.rng)}
	if r.Logprobs {
		lse := logSumExp(raw)
		tok.Logprob = raw[tok.ID] - lse
		tok.Top = topLogprobs(raw, r.TopLogprobs, lse)
	}
	return tok
}

// adjust applies s's logit bias and its presence and frequency penalties
// (OpenAI's definitions: logit -= presence·[count > 0] + frequency·count,
// counted over the tokens generated so far).
func (s *sequence) adjust(logits []float32) {
	r := s.req
	for id, b := range r.LogitBias {
		logits[id] += b
	}
	if r.PresencePenalty == 0 && r.FrequencyPenalty == 0 {
		return
	}
	counts := map[int64]int{}
	for _, t := range s.tokens[s.prompt:] {
		counts[t]++
	}
	for t, n := range counts {
		logits[t] -= float32(r.PresencePenalty + r.FrequencyPenalty*float64(n))
	}
}

// pick draws a token: greedy at temperature 0, else from the top TopK
// tokens (0: all) within probability mass TopP (0 or 1: all), with rng.
func pick(logits []float32, r GenerateRequest, rng *rand.Rand) int64 {
	if r.Temperature <= 0 {
		return int64(argmax(logits))
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return a - b
	})
	if r.TopK > 0 && r.TopK < len(idx) {
		idx = idx[:r.TopK]
	}
	probs := make([]float64, len(idx))
	top := float64(logits[idx[0]])
	var sum float64
	for i, j := range idx {
		probs[i] = math.Exp((float64(logits[j]) - top) / r.Temperature)
		sum += probs[i]
	}
	if r.TopP > 0 && r.TopP < 1 {
		var mass float64
		for i := range probs {
			mass += probs[i] / sum
			if mass >= r.TopP {
				idx, probs = idx[:i+1], probs[:i+1]
				break
			}
		}
		sum = 0
		for _, p := range probs {
			sum += p
		}
	}
	x := rng.Float64() * sum
	for i, p := range probs {
		if x -= p; x < 0 {
			return int64(idx[i])
		}
	}
	return int64(idx[len(idx)-1])
}

// logSumExp returns log Σ exp(x), computed from the largest so that it
// neither overflows nor underflows.
func logSumExp(xs []float32) float32 {
	top := xs[argmax(xs)]
	var sum float64
	for _, x := range xs {
		sum += math.Exp(float64(x - top))
	}
	return top + float32(math.Log(sum))
}

// topLogprobs returns the k most likely tokens of logits, most likely
// first (ties: the lower id), with their log-probabilities, lse being the
// logits' log-sum-exp.
func topLogprobs(logits []float32, k int, lse float32) []TopToken {
	if k <= 0 {
		return nil
	}
	top := make([]TopToken, 0, k+1)
	for id, x := range logits {
		if len(top) == k && x <= top[k-1].Logprob {
			continue
		}
		at, _ := slices.BinarySearchFunc(top, x, func(t TopToken, x float32) int {
			if t.Logprob >= x {
				return -1 // equals stay ahead: they have lower ids
			}
			return 1
		})
		top = slices.Insert(top, at, TopToken{ID: int64(id), Logprob: x})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob -= lse
	}
	return top
}

// argmax returns the index of the largest of xs, the first of equals (0
// when xs is empty). Four running maxima, each over every fourth element,
// keep the loop free of a dependency from one element to the next: greedy
// decoding scans the whole vocabulary for every sequence every step.
func argmax(xs []float32) int {
	inf := float32(math.Inf(-1))
	v0, v1, v2, v3 := inf, inf, inf, inf
	i0, i1, i2, i3 := 0, 1, 2, 3
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		x := xs[i : i+4 : i+4]
		if x[0] > v0 {
			v0, i0 = x[0], i
		}
		if x[1] > v1 {
			v1, i1 = x[1], i+1
		}
		if x[2] > v2 {
			v2, i2 = x[2], i+2
		}
		if x[3] > v3 {
			v3, i3 = x[3], i+3
		}
	}
	best, bv := 0, inf
	for _, c := range [...]struct {
		v float32
		i int
	}{{v0, i0}, {v1, i1}, {v2, i2}, {v3, i3}} {
		if c.i < i && (c.v > bv || c.v == bv && c.i < best) {
			best, bv = c.i, c.v
		}
	}
	for ; i < len(xs); i++ {
		if xs[i] > bv {
			best, bv = i, xs[i]
		}
	}
	return best
}
