// Package stattest holds the statistics that tell a real difference
// between two sets of latencies from noise: the Mann-Whitney U test, a
// rank test that asks whether one set tends to be larger than the other,
// and distribution-free confidence bounds on a quantile, which say how far
// a p99 measured over n requests can be from the true one.
//
// Both work on grouped data (a value and how many observations had it), so
// that they run as well on raw samples as on histogram buckets: equal
// values are ties, handled by mid-ranks and the tie-corrected variance.
package stattest

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Group is Count observations of one Value.
type Group struct {
	Value float64
	Count uint64
}

// Groups returns raw observations as groups, one each.
func Groups(values []float64) []Group {
	g := make([]Group, len(values))
	for i, v := range values {
		g[i] = Group{Value: v, Count: 1}
	}
	return g
}

// MinMannWhitney is the fewest observations on each side for which the
// normal approximation of U's distribution is taken as good: Siegel and
// Castellan, Nonparametric Statistics (1988), §6.6, use it from 20.
const MinMannWhitney = 20

// ErrTooFew answers a test given fewer observations than it needs.
var ErrTooFew = errors.New("too few observations")

// UTest is the result of a one-sided Mann-Whitney U test.
type UTest struct {
	U float64 // of x: how many (x, y) pairs have x > y, ties counting a half
	// Effect is U/(nx·ny): the chance that an x drawn at random exceeds a
	// y drawn at random (ties counting a half); 0.5 when neither tends to
	// be larger.
	Effect float64
	Z      float64 // U standardised, with the continuity correction
	P      float64 // the one-sided p-value: the chance of a U this large were x no larger than y
}

// MannWhitneyGreater tests whether x tends to be larger than y: a small P
// says it does, beyond what chance would give. It uses the normal
// approximation with the tie correction and a continuity correction, as
// Lehmann, Nonparametrics: Statistical Methods Based on Ranks (1975),
// §1.4, gives it and as scipy.stats.mannwhitneyu(method="asymptotic",
// alternative="greater") computes it:
//
//	U    = R_x − nx(nx+1)/2, R_x the sum of x's mid-ranks in the pooled sample
//	E[U] = nx·ny/2
//	V[U] = nx·ny/12 · ((N+1) − Σ(t³−t)/(N(N−1))), t the size of each tie group
//	Z    = (U − E[U] − 1/2)/√V[U],  P = 1 − Φ(Z)
//
// It fails with ErrTooFew below MinMannWhitney observations on either
// side. Groups need not be sorted or distinct; it runs in O(k log k) for
// k groups, whatever the counts.
func MannWhitneyGreater(x, y []Group) (UTest, error) {
	type pooled struct {
		value  float64
		nx, ny float64
	}
	all := make([]pooled, 0, len(x)+len(y))
	var nx, ny float64
	for _, g := range x {
		all = append(all, pooled{g.Value, float64(g.Count), 0})
		nx += float64(g.Count)
	}
	for _, g := range y {
		all = append(all, pooled{g.Value, 0, float64(g.Count)})
		ny += float64(g.Count)
	}
	if nx < MinMannWhitney || ny < MinMannWhitney {
		return UTest{}, ErrTooFew
	}
	slices.SortFunc(all, func(a, b pooled) int { return cmp.Compare(a.value, b.value) })
	n := nx + ny
	var rankX, ties, below float64
	for i := 0; i < len(all); {
		j, tx, ty := i, 0.0, 0.0
		for ; j < len(all) && all[j].value == all[i].value; j++ {
			tx, ty = tx+all[j].nx, ty+all[j].ny
		}
		t := tx + ty
		rankX += tx * (below + (t+1)/2) // each of the tie group's x at its mid-rank
		ties += t*t*t - t
		below += t
		i = j
	}
	u := rankX - nx*(nx+1)/2
	variance := nx * ny / 12 * ((n + 1) - ties/(n*(n-1)))
	res := UTest{U: u, Effect: u / (nx * ny), P: 1}
	if variance <= 0 { // every observation equal: no evidence either way
		return res, nil
	}
	res.Z = (u - nx*ny/2 - 0.5) / math.Sqrt(variance)
	res.P = distuv.UnitNormal.Survival(res.Z)
	return res, nil
}

// QuantileRanks returns the 1-based ranks of the order statistics that
// bound the q-quantile of the distribution n observations came from:
// X_(lower) is at most the quantile, and X_(upper) at least, each with
// probability conf or more. ok is false when n observations are too few
// for the upper bound (MinForUpperBound); lower is then still given, and
// 0 when even it does not exist.
//
// The bounds are distribution-free: the number of observations at or
// below the true quantile is Binomial(n, q), so P(X_(k) ≤ ξ_q) = P(B ≥ k)
// and P(X_(k) ≥ ξ_q) = P(B ≤ k−1) (Hahn and Meeker, Statistical
// Intervals (1991), §5.2; David and Nagaraja, Order Statistics (2003),
// §7.1). lower is the largest rank with P(B ≥ lower) ≥ conf, upper the
// smallest with P(B ≤ upper−1) ≥ conf.
func QuantileRanks(n uint64, q, conf float64) (lower, upper uint64, ok bool) {
	if n == 0 {
		return 0, 0, false
	}
	b := distuv.Binomial{N: float64(n), P: q}
	cdf := func(k uint64) float64 { return b.CDF(float64(k)) } // P(B ≤ k)
	// P(B ≥ k) = 1 − cdf(k−1) falls as k rises: the last k where it is at
	// least conf.
	lower = uint64(sort.Search(int(n), func(i int) bool { return 1-cdf(uint64(i)) < conf })) // i = k−1
	upper = uint64(sort.Search(int(n), func(i int) bool { return cdf(uint64(i)) >= conf })) + 1
	return lower, upper, upper <= n
}

// MinForUpperBound returns the fewest observations whose largest bounds
// the q-quantile from above with probability conf: the least n with
// 1 − q^n ≥ conf. Below it a sample's p99 says nothing about how high the
// true p99 may be; 299 for the p99 at 95%.
func MinForUpperBound(q, conf float64) uint64 {
	if q <= 0 || conf <= 0 {
		return 1
	}
	if q >= 1 || conf >= 1 {
		return math.MaxUint64
	}
	return uint64(math.Ceil(math.Log1p(-conf) / math.Log(q)))
}
