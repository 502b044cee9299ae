package deploy

import (
	"fmt"
	"math"

	"github.com/infer-serving/infer/pkg/stattest"
	"github.com/infer-serving/infer/pkg/window"
)

// DefaultConfidence is how sure a latency verdict is by default: each test
// behind it calls noise a regression at most 5% of the time.
const DefaultConfidence = 0.95

// p99 is the quantile MaxP99Ratio bounds.
const p99 = 0.99

// p98 is the candidate's quantile the tail test bounds from below: twice
// the share of slow requests a p99 allows. The margin is in the share,
// not the value, because real latencies often have a cliff near their
// p99 (1% of requests descheduled, ten times as long): there a p99 over a
// few hundred requests lands on either side of the cliff by chance, and
// two versions' p99s differ tenfold for nothing.
const p98 = 0.98

// confidence returns a's confidence, the default for a rollout saved
// before it had one.
func (a Analysis) confidence() float64 {
	if a.Confidence == 0 {
		return DefaultConfidence
	}
	return a.Confidence
}

// MinLatencyRequests returns the fewest requests each version needs in a
// step for its p99 to mean something at a's confidence: that many bound
// the true p99 from above (stattest.MinForUpperBound, at the confidence
// each of the p99 test's two bounds is taken at). 368 at 95%. A step with
// fewer is inconclusive on latency, never a pass.
func (a Analysis) MinLatencyRequests() uint64 {
	return stattest.MinForUpperBound(p99, 1-(1-a.confidence())/2)
}

// judgeLatency compares the candidate's latencies in a step with the
// stable version's, against MaxP99Ratio, in two ways, each calling noise a
// regression at most 1−Confidence of the time:
//
//   - the whole distribution: a one-sided Mann-Whitney U test of the
//     candidate's latencies against the stable version's scaled by the
//     ratio (the rank test Kayenta's canary judge uses). It fails the step
//     as soon as both have 20 requests, when the candidate is slower than
//     the ratio allows beyond chance; an identical copy, ranked against
//     latencies a ratio above 1 higher, never is.
//   - the tail: the stable version's p99 bounded from above, at
//     1−(1−Confidence)/2, from order statistics: its own run-to-run
//     spread, how high a p99 over this many of its requests could be by
//     chance. The step fails when the candidate's p98, bounded from below
//     at the same confidence, is above the ratio times that bound: at
//     least 2% of its requests slower than the stable version's p99
//     allows, where 1% would be a p99 at the ratio.
//
// Below MinLatencyRequests on either side (and with nothing slower found)
// the verdict is inconclusive: a p99 over a hundred requests is nearly
// their maximum. A stable version with no traffic in the step (a canary at
// 100%) leaves nothing to compare with: latency is not judged.
//
// Latencies are read from the histograms' native buckets (4.4% wide),
// each bucket's observations taken at its geometric midpoint and tied.
func (a Analysis) judgeLatency(stable, cand window.Histogram, fig map[string]float64) (verdict, reason string) {
	sBins, cBins := stable.Bins(), cand.Bins()
	nS, nC := window.Observations(sBins), window.Observations(cBins)
	r, alpha := a.MaxP99Ratio, 1-a.confidence()
	cP99, sP99 := cand.Quantile(p99), stable.Quantile(p99)
	fig["candidate_p99_ms"] = 1000 * cP99
	if nS < stattest.MinMannWhitney {
		return Pass, fmt.Sprintf("latency not compared: %d stable requests in the step", nS)
	}
	fig["stable_p99_ms"] = 1000 * sP99
	if ratio := cP99 / sP99; !math.IsNaN(ratio) && !math.IsInf(ratio, 0) {
		fig["p99_ratio"] = ratio
	}
	need := a.MinLatencyRequests()
	fig["latency_min_requests"] = float64(need)
	if nC < stattest.MinMannWhitney {
		return Inconclusive, fmt.Sprintf("latency: %d requests of the new version timed, want at least %d for a meaningful p99", nC, need)
	}
	scaled := groups(sBins, r)
	u, err := stattest.MannWhitneyGreater(groups(cBins, 1), scaled)
	if err != nil {
		return Inconclusive, fmt.Sprintf("latency: %v", err)
	}
	fig["latency_p_value"] = u.P
	fig["latency_effect"] = u.Effect
	if u.P < alpha {
		return Fail, fmt.Sprintf("latency: slower than %.3gx the stable version's (Mann-Whitney U: %s, significance %.2g; p99 %s against %s)",
			r, pValue(u.P), alpha, ms(cP99), ms(sP99))
	}
	if nC < need || nS < need {
		return Inconclusive, fmt.Sprintf("latency: a p99 over %d requests of the new version and %d of the stable one is noise; want at least %d each at %.3g%% confidence",
			nC, nS, need, 100*a.confidence())
	}
	lo, _, _ := stattest.QuantileRanks(nC, p98, 1-alpha/2)
	_, hi, _ := stattest.QuantileRanks(nS, p99, 1-alpha/2)
	cLow, ok1 := window.Ranked(cBins, lo)
	sHigh, ok2 := window.Ranked(sBins, hi)
	if ok1 && ok2 {
		fig["candidate_p98_low_ms"], fig["stable_p99_high_ms"] = 1000*cLow.Lower, 1000*sHigh.Upper
		if cLow.Lower > r*sHigh.Upper {
			return Fail, fmt.Sprintf("latency: p98 at least %s, above %.3gx the stable version's p99 of at most %s (%.3g%% bounds; point p99s %s and %s)",
				ms(cLow.Lower), r, ms(sHigh.Upper), 100*(1-alpha/2), ms(cP99), ms(sP99))
		}
	}
	return Pass, fmt.Sprintf("latency within %.3gx (%s)", r, pValue(u.P))
}

// groups returns bins as observations at their geometric midpoints, scaled
// by k: equal within a bin, so a bin's observations are one tie group.
func groups(bins []window.Bin, k float64) []stattest.Group {
	g := make([]stattest.Group, len(bins))
	for i, b := range bins {
		v := math.Sqrt(b.Lower * b.Upper)
		switch {
		case math.IsInf(b.Upper, 1):
			v = b.Lower
		case b.Lower <= 0:
			v = b.Upper / 2
		}
		g[i] = stattest.Group{Value: k * v, Count: b.Count}
	}
	return g
}

func ms(seconds float64) string { return fmt.Sprintf("%.3gms", 1000*seconds) }

// pValue prints a p-value, those too small to print as a bound.
func pValue(p float64) string {
	if p < 1e-6 {
		return "p<1e-6"
	}
	return fmt.Sprintf("p=%.2g", p)
}
