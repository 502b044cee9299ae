package stattest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteU counts the (x, y) pairs with x > y, ties a half: U by its
// definition.
func bruteU(x, y []float64) float64 {
	u := 0.0
	for _, a := range x {
		for _, b := range y {
			switch {
			case a > b:
				u++
			case a == b:
				u += 0.5
			}
		}
	}
	return u
}

// The tie-corrected variance is the exact variance of U over every way
// the pooled sample, ties and all, could split into x and y: here all 210
// splits of ten values, four of them tied at 3 and three at 5.
func TestUMatchesItsDefinitionAndTheExactVariance(t *testing.T) {
	pooled := []float64{1, 3, 3, 3, 3, 5, 5, 5, 8, 9}
	const nx = 4
	var sum, sumSq float64
	splits := 0
	for mask := 0; mask < 1<<len(pooled); mask++ {
		var x, y []float64
		for i, v := range pooled {
			if mask&(1<<i) != 0 {
				x = append(x, v)
			} else {
				y = append(y, v)
			}
		}
		if len(x) != nx {
			continue
		}
		splits++
		u := bruteU(x, y)
		sum += u
		sumSq += u * u
		if r := rankU(x, y); r != u {
			t.Fatalf("x %v y %v: U %v from ranks, %v by counting pairs", x, y, r, u)
		}
	}
	mean, variance := sum/float64(splits), sumSq/float64(splits)-(sum/float64(splits))*(sum/float64(splits))
	n, ny := float64(len(pooled)), float64(len(pooled)-nx)
	ties := 4.0*4*4 - 4 + 3*3*3 - 3 // groups of 4 and 3; singletons add 0
	formula := nx * ny / 12 * ((n + 1) - ties/(n*(n-1)))
	if splits != 210 || math.Abs(mean-nx*ny/2) > 1e-9 || math.Abs(variance-formula) > 1e-9 {
		t.Fatalf("%d splits: mean %v (want %v), variance %v, formula %v", splits, mean, nx*ny/2, variance, formula)
	}
}

// rankU is U as MannWhitneyGreater computes it, without its sample-size
// floor: the test above runs it on samples of four.
func rankU(x, y []float64) float64 {
	big := func(v []float64) []Group { // counts scaled up past the floor, U scaled back
		g := Groups(v)
		for i := range g {
			g[i].Count = 100
		}
		return g
	}
	r, err := MannWhitneyGreater(big(x), big(y))
	if err != nil {
		panic(err)
	}
	return r.U / (100 * 100)
}

// Grouped observations give the same test as the raw ones.
func TestGroupsAreTheirObservations(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var x, y []float64
	for range 300 {
		x = append(x, float64(r.IntN(20)))
		y = append(y, float64(r.IntN(18)))
	}
	raw, err := MannWhitneyGreater(Groups(x), Groups(y))
	if err != nil {
		t.Fatal(err)
	}
	group := func(v []float64) []Group {
		counts := map[float64]uint64{}
		for _, a := range v {
			counts[a]++
		}
		var g []Group
		for a, c := range counts {
			g = append(g, Group{a, c})
		}
		return g
	}
	grouped, _ := MannWhitneyGreater(group(x), group(y))
	if math.Abs(raw.U-grouped.U) > 1e-9 || math.Abs(raw.P-grouped.P) > 1e-12 || raw.U != bruteU(x, y) {
		t.Fatalf("raw %+v, grouped %+v, U by pairs %v", raw, grouped, bruteU(x, y))
	}
	if raw.P > 0.05 || raw.Effect <= 0.5 {
		t.Fatalf("x drawn from 0..19 against y from 0..17: %+v", raw)
	}
}

// The test errs at its nominal rate: two samples of one distribution are
// called different about 5% of the time at p < 0.05; a shift is found.
func TestMannWhitneyErrsAtItsLevel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const trials = 2000
	rejected, found := 0, 0
	for range trials {
		x, y, shifted := make([]float64, 40), make([]float64, 60), make([]float64, 40)
		for i := range x {
			x[i] = r.ExpFloat64()
			shifted[i] = 1.5 * r.ExpFloat64()
		}
		for i := range y {
			y[i] = r.ExpFloat64()
		}
		if res, _ := MannWhitneyGreater(Groups(x), Groups(y)); res.P < 0.05 {
			rejected++
		}
		if res, _ := MannWhitneyGreater(Groups(shifted), Groups(y)); res.P < 0.05 {
			found++
		}
	}
	if rate := float64(rejected) / trials; rate < 0.035 || rate > 0.065 {
		t.Errorf("false positives %.3f at the 5%% level", rate)
	}
	if rate := float64(found) / trials; rate < 0.4 {
		t.Errorf("a 1.5x scale found in %.3f of trials of 40 and 60", rate)
	}
}

func TestMannWhitneyNeedsEnough(t *testing.T) {
	if _, err := MannWhitneyGreater(Groups(make([]float64, 19)), Groups(make([]float64, 100))); err != ErrTooFew {
		t.Fatalf("19 observations: %v", err)
	}
	same := []Group{{Value: 1, Count: 50}}
	if r, err := MannWhitneyGreater(same, same); err != nil || r.P != 1 || r.Effect != 0.5 {
		t.Fatalf("all equal: %+v %v", r, err)
	}
}

// The bounds hold as often as promised: over seeded samples of uniform
// values, whose q-quantile is q, X_(lower) ≤ q and X_(upper) ≥ q in at
// least 95% of trials (less a margin for the trials' own noise).
func TestQuantileRanksCover(t *testing.T) {
	if got := MinForUpperBound(0.99, 0.95); got != 299 {
		t.Fatalf("p99 at 95%%: %d observations, want 299", got)
	}
	if _, _, ok := QuantileRanks(298, 0.99, 0.95); ok {
		t.Fatal("298 observations bound the p99 from above")
	}
	if _, u, ok := QuantileRanks(299, 0.99, 0.95); !ok || u != 299 {
		t.Fatalf("299 observations: upper rank %d %v, want the largest", u, ok)
	}
	r := rand.New(rand.NewPCG(5, 6))
	const trials, n, q = 2000, 1000, 0.99
	lo, hi, ok := QuantileRanks(n, q, 0.95)
	if !ok || lo >= 990 || hi <= 990 || hi > n {
		t.Fatalf("ranks %d, %d of %d", lo, hi, n)
	}
	below, above := 0, 0
	x := make([]float64, n)
	for range trials {
		for i := range x {
			x[i] = r.Float64()
		}
		slices.Sort(x)
		if x[lo-1] <= q {
			below++
		}
		if x[hi-1] >= q {
			above++
		}
	}
	if float64(below)/trials < 0.94 || float64(above)/trials < 0.94 {
		t.Fatalf("lower bound held in %d, upper in %d of %d trials", below, above, trials)
	}
}
