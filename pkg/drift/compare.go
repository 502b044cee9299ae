package drift

import (
	"maps"
	"math"
	"slices"
	"time"
)

// DefaultMinSamples is the fewest values a feature needs in both
// summaries for its tests to alarm: below it the scores are reported, but
// sampling noise alone could cross the thresholds (PSI over 10 bins
// averages about 9/n under no drift).
const DefaultMinSamples = 100

// CompareOptions tune Compare.
type CompareOptions struct {
	// Alpha is the false-alarm rate allowed per tensor per comparison,
	// shared among the tensor's KS and chi-squared tests (DefaultAlpha
	// when 0).
	Alpha float64
	// MinSamples is the fewest values a feature needs in both summaries to
	// alarm (DefaultMinSamples when 0).
	MinSamples int64
}

func (o CompareOptions) withDefaults() CompareOptions {
	if o.Alpha <= 0 {
		o.Alpha = DefaultAlpha
	}
	if o.MinSamples <= 0 {
		o.MinSamples = DefaultMinSamples
	}
	return o
}

// Score is one test of one feature.
type Score struct {
	Tensor  string  `json:"tensor"`
	Role    string  `json:"role"`
	Feature string  `json:"feature"`
	Test    string  `json:"test"` // TestPSI, TestKS, TestChi2 or TestJS
	Value   float64 `json:"value"`
	// PValue is the KS and chi-squared tests' p-value.
	PValue *float64 `json:"p_value,omitempty"`
	// Threshold is the PSI above which the test alarms, or the p-value
	// below which KS and chi-squared alarm (Alpha over the tensor's tests);
	// 0 for a score reported only (JS).
	Threshold float64 `json:"threshold"`
	Alarm     bool    `json:"alarm"`
	// Position is, for FeaturePositionMean, the position (or group of
	// positions, see MaxPositionGroups) whose mean moved the most.
	Position *int `json:"position,omitempty"`
}

// Span is the time a summary covers and the requests it holds.
type Span struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Requests int64     `json:"requests"`
}

func spanOf(s Summary) Span { return Span{s.Start, s.End, s.Requests} }

// Report is a comparison of a summary with a reference.
type Report struct {
	Reference Span    `json:"reference"`
	Current   Span    `json:"current"`
	Scores    []Score `json:"scores"`
	// Drifted names each feature with a test that alarmed, as
	// "role/tensor/feature".
	Drifted []string `json:"drifted"`
}

// Alarm reports whether any feature drifted.
func (r Report) Alarm() bool { return len(r.Drifted) > 0 }

// Largest returns the highest score of test among the tensors of role
// (Input or Output); ok is false when there is none.
func (r Report) Largest(role, test string) (s Score, ok bool) {
	for _, x := range r.Scores {
		if x.Role == role && x.Test == test && (!ok || x.Value > s.Value) {
			s, ok = x, true
		}
	}
	return s, ok
}

// Compare tests each feature of cur against the same feature of ref:
// continuous features with PSI over ref's deciles and a two-sample KS test,
// categorical ones with PSI, a chi-squared test and the Jensen-Shannon
// distance. Features in only one of the two are skipped. KS and
// chi-squared read the distributions from the summaries' quantiles and
// counts, so their D is that of the sketches (within their 1%). Tensors
// too wide to follow position by position also have their positions'
// means compared (TestMeanZ), one more test among the tensor's.
func Compare(ref, cur Summary, opts CompareOptions) Report {
	opts = opts.withDefaults()
	r := Report{Reference: spanOf(ref), Current: spanOf(cur), Scores: []Score{}, Drifted: []string{}}
	for _, ct := range cur.Tensors {
		rt, ok := ref.Tensor(ct.Role, ct.Name)
		if !ok {
			continue
		}
		type pair struct{ ref, cur FeatureSummary }
		var pairs []pair
		for _, cf := range ct.Features {
			if rf, ok := rt.Feature(cf.Name); ok && rf.Kind == cf.Kind && rf.Count > 0 && cf.Count > 0 {
				pairs = append(pairs, pair{rf, cf})
			}
		}
		tests := len(pairs) // one significance test per feature, and one of the positions' means
		if ct.Positions != nil && rt.Positions != nil {
			tests++
		}
		alpha := opts.Alpha / float64(max(tests, 1))
		if ct.Positions != nil && rt.Positions != nil {
			if z, at, pv, tested := comparePositions(rt.Positions, ct.Positions, opts.MinSamples); tested > 0 {
				s := Score{Tensor: ct.Name, Role: ct.Role, Feature: FeaturePositionMean, Test: TestMeanZ,
					Value: z, PValue: &pv, Threshold: alpha, Alarm: pv < alpha, Position: &at}
				r.Scores = append(r.Scores, s)
				if s.Alarm {
					r.Drifted = append(r.Drifted, ct.Role+"/"+ct.Name+"/"+FeaturePositionMean)
				}
			}
		}
		for _, p := range pairs {
			enough := p.ref.Count >= opts.MinSamples && p.cur.Count >= opts.MinSamples
			score := func(test string, v float64, pv *float64, threshold float64) {
				s := Score{Tensor: ct.Name, Role: ct.Role, Feature: p.cur.Name, Test: test, Value: v, PValue: pv, Threshold: threshold}
				switch {
				case !enough || threshold == 0:
				case pv != nil:
					s.Alarm = *pv < threshold
				default:
					s.Alarm = v > threshold
				}
				r.Scores = append(r.Scores, s)
				if s.Alarm {
					key := ct.Role + "/" + ct.Name + "/" + p.cur.Name
					if !slices.Contains(r.Drifted, key) {
						r.Drifted = append(r.Drifted, key)
					}
				}
			}
			if p.cur.Kind == Continuous {
				psi, d := compareContinuous(p.ref, p.cur)
				pv := KSPValue(d, float64(p.cur.Count), float64(p.ref.Count))
				score(TestPSI, psi, nil, PSIAlarm)
				score(TestKS, d, &pv, alpha)
				continue
			}
			a, b := categoryCounts(p.ref.Categories, p.cur.Categories)
			stat, _, pv := Chi2(a, b)
			score(TestPSI, PSI(shares(a), shares(b)), nil, PSIAlarm)
			score(TestChi2, stat, &pv, alpha)
			score(TestJS, JSDistance(a, b), nil, 0)
		}
	}
	return r
}

// compareContinuous returns the PSI of cur over ref's deciles and the KS
// statistic between the two.
func compareContinuous(ref, cur FeatureSummary) (psi, d float64) {
	var edges []float64
	for k := 1; k < 10; k++ {
		e := ref.Quantile(float64(k) / 10)
		if len(edges) == 0 || e > edges[len(edges)-1] {
			edges = append(edges, e)
		}
	}
	expected, actual := make([]float64, len(edges)+1), make([]float64, len(edges)+1)
	var prevE, prevA float64
	for i, e := range edges {
		fe, fa := ref.cdf(e), cur.cdf(e)
		expected[i], actual[i] = fe-prevE, fa-prevA
		prevE, prevA = fe, fa
	}
	expected[len(edges)], actual[len(edges)] = 1-prevE, 1-prevA
	psi = PSI(expected, actual)
	for _, q := range [][]float64{ref.Quantiles, cur.Quantiles} {
		for _, x := range q {
			d = max(d, math.Abs(ref.cdf(x)-cur.cdf(x)))
		}
	}
	return psi, d
}

// categoryCounts returns both count maps as vectors over the union of
// their keys, in key order.
func categoryCounts(ref, cur map[string]int64) (a, b []float64) {
	keys := slices.Sorted(maps.Keys(ref))
	for k := range cur {
		if _, ok := ref[k]; !ok {
			keys = append(keys, k)
		}
	}
	a, b = make([]float64, len(keys)), make([]float64, len(keys))
	for i, k := range keys {
		a[i], b[i] = float64(ref[k]), float64(cur[k])
	}
	return a, b
}
