package loadgen

import (
	"fmt"
	"math"
	"slices"
)

// Zipf draws ranks 0..n-1 with Zipf's law: rank k (from 0) with
// probability proportional to 1/(k+1)^s. s = 0 is uniform; s = 1 is the
// classic law of word and page popularity (the first rank takes 22% of
// 50, the first ten 65%); larger s concentrates further. Unlike
// math/rand's Zipf it takes any s ≥ 0 and draws by inverse CDF over a
// table, so that a draw is a pure function of the seed and its number:
// concurrent senders share one Zipf without a lock, and a run is
// repeatable.
type Zipf struct {
	cdf  []float64 // cdf[k] = P(rank ≤ k); the last is 1
	seed uint64
}

// NewZipf returns a Zipf over n ranks with exponent s, seeded.
func NewZipf(n int, s float64, seed uint64) (*Zipf, error) {
	if n < 1 {
		return nil, fmt.Errorf("zipf over %d ranks: want at least 1", n)
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf exponent %v: want 0 (uniform) or more, such as 1.1", s)
	}
	z := &Zipf{cdf: make([]float64, n), seed: seed}
	var sum float64
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	z.cdf[n-1] = 1
	return z, nil
}

// P returns the probability of rank k.
func (z *Zipf) P(k int) float64 {
	if k == 0 {
		return z.cdf[0]
	}
	return z.cdf[k] - z.cdf[k-1]
}

// Rank returns the i-th draw: a rank in [0, n).
func (z *Zipf) Rank(i uint64) int {
	u := float64(splitmix(z.seed^(i*0x9e3779b97f4a7c15))>>11) / (1 << 53) // uniform in [0, 1)
	k, _ := slices.BinarySearch(z.cdf, u)
	if k < len(z.cdf) && z.cdf[k] == u { // P(rank ≤ k) = u: u belongs to the next rank
		k++
	}
	return min(k, len(z.cdf)-1)
}

// splitmix is splitmix64's output function: a well-mixed 64-bit hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
