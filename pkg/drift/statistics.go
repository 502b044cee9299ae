package drift

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// The tests' names, as they appear in scores and in the
// infer_drift_score metric's test label.
const (
	TestPSI  = "psi"  // population stability index, continuous and categorical
	TestKS   = "ks"   // two-sample Kolmogorov-Smirnov statistic D, continuous
	TestChi2 = "chi2" // chi-squared statistic of a 2×k contingency table, categorical
	TestJS   = "js"   // Jensen-Shannon distance (base 2, in [0, 1]), categorical
	// TestMeanZ (positions.go): Welch z of per-position means, wide tensors
)

// Default thresholds.
//
// PSI: below 0.1 no significant change, 0.1 to 0.25 a moderate shift
// worth watching, above 0.25 a significant shift (the credit-scoring rule
// of thumb: Siddiqi, "Credit Risk Scorecards", 2006; Yurdakul, "Statistical
// properties of the population stability index", 2018). A shift of a
// normal feature by 0.5 standard deviations scores about 0.24 over deciles,
// so PSI alone calls it moderate; the KS test is what flags it.
//
// KS and chi-squared alarm on their p-value: below DefaultAlpha divided by
// the number of tests run on the tensor (Bonferroni), so that a tensor of
// many features raises no more false alarms than a tensor of one. Under no
// drift a tensor alarms in at most one window in a thousand.
const (
	PSIWarn      = 0.1
	PSIAlarm     = 0.25
	DefaultAlpha = 0.001
)

// psiFloor keeps an empty bin's share from making the PSI infinite: a
// bin with no values counts as holding 0.01% of them, the usual smoothing.
const psiFloor = 1e-4

// PSI returns the population stability index of actual shares against
// expected ones, bin by bin: Σ (a−e)·ln(a/e). The slices hold shares of
// the same bins (each summing to 1); a share below 0.0001 counts as 0.0001.
// Under no drift, PSI·n·m/(n+m) follows roughly a chi-squared law with
// bins−1 degrees of freedom, so small windows score high by chance: with 10
// bins and 100 values, about 0.09 on average.
func PSI(expected, actual []float64) float64 {
	var psi float64
	for i := range expected {
		e, a := max(expected[i], psiFloor), max(actual[i], psiFloor)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// KSPValue returns the asymptotic p-value of a two-sample
// Kolmogorov-Smirnov statistic d between samples of n and m values:
// Q_KS((√ne + 0.12 + 0.11/√ne)·d) with ne = n·m/(n+m), the Kolmogorov
// distribution's tail 2·Σ (−1)^(k−1)·exp(−2k²λ²) (Stephens 1970, as in
// Press et al., "Numerical Recipes", 3rd ed., §14.3.3).
func KSPValue(d float64, n, m float64) float64 {
	if n <= 0 || m <= 0 {
		return 1
	}
	ne := math.Sqrt(n * m / (n + m))
	lambda := (ne + 0.12 + 0.11/ne) * d
	if lambda < 0.2 {
		return 1 // the series converges slowly there, and the tail is 1 to 8 digits
	}
	var sum, sign float64 = 0, 1
	for k := 1; k <= 100; k++ {
		term := sign * math.Exp(-2*float64(k*k)*lambda*lambda)
		sum += term
		if math.Abs(term) < 1e-12 {
			break
		}
		sign = -sign
	}
	return min(max(2*sum, 0), 1)
}

// Chi2 returns the chi-squared statistic of the 2×k contingency table of
// two samples' counts per category, its degrees of freedom (k−1, over the
// categories either sample holds) and its p-value (Pearson's test of
// homogeneity). Both samples being samples, this is fairer than a
// goodness-of-fit test that takes the reference's shares as exact.
func Chi2(a, b []float64) (stat float64, df int, p float64) {
	var na, nb float64
	for i := range a {
		na += a[i]
		nb += b[i]
	}
	if na == 0 || nb == 0 {
		return 0, 0, 1
	}
	n := na + nb
	k := 0
	for i := range a {
		col := a[i] + b[i]
		if col == 0 {
			continue
		}
		k++
		ea, eb := na*col/n, nb*col/n
		stat += (a[i]-ea)*(a[i]-ea)/ea + (b[i]-eb)*(b[i]-eb)/eb
	}
	if k < 2 {
		return 0, 0, 1
	}
	df = k - 1
	return stat, df, distuv.ChiSquared{K: float64(df)}.Survival(stat)
}

// JSDistance returns the Jensen-Shannon distance between two
// distributions given as counts or shares over the same categories: the
// square root of the Jensen-Shannon divergence in bits, so 0 for equal
// distributions and 1 for disjoint ones (Endres and Schindelin, "A new
// metric for probability distributions", 2003).
func JSDistance(a, b []float64) float64 {
	var na, nb float64
	for i := range a {
		na += a[i]
		nb += b[i]
	}
	if na == 0 || nb == 0 {
		return 0
	}
	var div float64
	for i := range a {
		p, q := a[i]/na, b[i]/nb
		m := (p + q) / 2
		if p > 0 {
			div += p / 2 * math.Log2(p/m)
		}
		if q > 0 {
			div += q / 2 * math.Log2(q/m)
		}
	}
	return math.Sqrt(max(div, 0))
}

// shares returns counts divided by their sum.
func shares(counts []float64) []float64 {
	var n float64
	for _, c := range counts {
		n += c
	}
	out := make([]float64, len(counts))
	if n == 0 {
		return out
	}
	for i, c := range counts {
		out[i] = c / n
	}
	return out
}
