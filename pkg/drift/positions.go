package drift

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// FeaturePositionMean names the score of a wide tensor's per-position
// means: the position whose mean moved the most against the baseline.
const FeaturePositionMean = "position_mean"

// TestMeanZ is the per-position means' test: Welch's z of each position's
// mean against the baseline's, the largest |z| reported, its p-value
// two-sided and Bonferroni-corrected over the positions tested.
const TestMeanZ = "mean_z"

// MaxPositionGroups bounds the means a wide row keeps: a row of at most
// that many values keeps one per position; a wider one (an image) keeps one
// per group of neighbouring positions, position j in group
// j·MaxPositionGroups/width. Per window and tensor that is at most
// 3 × 1024 numbers, whatever the width.
const MaxPositionGroups = 1024

// PositionMeans are the means of a wide tensor's positions over a span's
// rows (or of groups of neighbouring positions, see MaxPositionGroups),
// where the row is too wide to follow each position's distribution.
// A shift of one position among hundreds hardly moves a row's norm or
// mean; it moves that position's mean by as much as it shifted.
type PositionMeans struct {
	// Width is the row's number of values; the slices hold one entry per
	// group, min(Width, MaxPositionGroups) of them.
	Width int       `json:"width"`
	Count []int64   `json:"count"`
	Mean  []float64 `json:"mean"`
	Std   []float64 `json:"std"`
}

// positionStats accumulates PositionMeans.
type positionStats struct {
	width      int
	count      []int64
	sum, sumSq []float64
}

func newPositionStats(width int) *positionStats {
	g := min(width, MaxPositionGroups)
	return &positionStats{width: width, count: make([]int64, g), sum: make([]float64, g), sumSq: make([]float64, g)}
}

// group returns the group of position j.
func (p *positionStats) group(j int) int { return j * len(p.count) / p.width }

func (p *positionStats) add(j int, v float64) {
	g := p.group(j)
	p.count[g]++
	p.sum[g] += v
	p.sumSq[g] += v * v
}

// merge adds o to p; tensors whose rows changed width are left apart.
func (p *positionStats) merge(o *positionStats) {
	if o == nil || o.width != p.width {
		return
	}
	for g := range p.count {
		p.count[g] += o.count[g]
		p.sum[g] += o.sum[g]
		p.sumSq[g] += o.sumSq[g]
	}
}

func (p *positionStats) summary() *PositionMeans {
	s := &PositionMeans{Width: p.width, Count: append([]int64(nil), p.count...),
		Mean: make([]float64, len(p.count)), Std: make([]float64, len(p.count))}
	for g, n := range p.count {
		if n > 0 {
			s.Mean[g] = p.sum[g] / float64(n)
			s.Std[g] = math.Sqrt(max(p.sumSq[g]/float64(n)-s.Mean[g]*s.Mean[g], 0))
		}
	}
	return s
}

// valid reports whether the slices match the width.
func (s *PositionMeans) valid() bool {
	g := min(s.Width, MaxPositionGroups)
	return s.Width > 0 && len(s.Count) == g && len(s.Mean) == g && len(s.Std) == g
}

// comparePositions returns Welch's z of the position whose mean moved the
// most between ref and cur, that group's index, and the p-value of so
// large a |z| among the groups with at least minSamples values in both
// (two-sided, times the groups tested); tested is 0 when none had enough
// or the widths differ. A group constant in both spans moves by an
// infinite z (math.MaxFloat64) when its constant changed, and by none when
// it did not.
func comparePositions(ref, cur *PositionMeans, minSamples int64) (z float64, at int, p float64, tested int) {
	if !ref.valid() || !cur.valid() || ref.Width != cur.Width {
		return 0, 0, 1, 0
	}
	for g := range ref.Mean {
		nr, nc := float64(ref.Count[g]), float64(cur.Count[g])
		if ref.Count[g] < minSamples || cur.Count[g] < minSamples {
			continue
		}
		tested++
		diff := math.Abs(cur.Mean[g] - ref.Mean[g])
		se := math.Sqrt(ref.Std[g]*ref.Std[g]/nr + cur.Std[g]*cur.Std[g]/nc)
		var zg float64
		switch {
		case se > 0:
			zg = diff / se
		case diff > 0:
			zg = math.MaxFloat64 // infinite, kept finite for JSON
		}
		if zg > z || tested == 1 {
			z, at = zg, g
		}
	}
	if tested == 0 {
		return 0, 0, 1, 0
	}
	return z, at, min(1, float64(tested)*2*distuv.UnitNormal.Survival(z)), tested
}
