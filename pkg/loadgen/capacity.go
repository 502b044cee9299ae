package loadgen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Sweep is a --qps range: start:stop:step requests a second.
type Sweep struct{ Start, Stop, Step float64 }

// ParseRates parses a --qps value: a rate ("500") or a sweep
// ("100:2000:100"); it returns the rates to run, in order.
func ParseRates(s string) ([]float64, error) {
	parts := strings.Split(s, ":")
	nums := make([]float64, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--qps %q: %q is not a rate above 0 (want 500, or start:stop:step such as 100:2000:100)", s, p)
		}
		nums[i] = v
	}
	switch len(nums) {
	case 1:
		return nums, nil
	case 3:
		sw := Sweep{nums[0], nums[1], nums[2]}
		if sw.Stop < sw.Start {
			return nil, fmt.Errorf("--qps %q: the sweep stops below its start", s)
		}
		n := int(math.Floor((sw.Stop-sw.Start)/sw.Step+1e-9)) + 1
		if n > 1000 {
			return nil, fmt.Errorf("--qps %q: %d steps; use a larger step", s, n)
		}
		rates := make([]float64, n)
		for i := range rates {
			rates[i] = sw.Start + float64(i)*sw.Step
		}
		return rates, nil
	}
	return nil, fmt.Errorf("--qps %q: want a rate or start:stop:step", s)
}

// Probe runs a load at rate and reports whether the server sustained it.
type Probe func(rate float64) (ok bool, err error)

// FindMax searches for the highest rate the server sustains: starting at
// start, it doubles until a probe fails (or max is passed), then bisects
// between the last rate that held and the first that did not until they
// are within tolerance of each other (a fraction, such as 0.05). It
// returns the highest rate that held, 0 when even start failed, and the
// probes made, in order.
func FindMax(start, max, tolerance float64, probe Probe) (best float64, tried []float64, err error) {
	try := func(rate float64) (bool, error) {
		tried = append(tried, rate)
		return probe(rate)
	}
	lo, hi := 0.0, 0.0
	for rate := start; ; rate *= 2 {
		if max > 0 && rate > max {
			rate = max
		}
		ok, err := try(rate)
		if err != nil {
			return lo, tried, err
		}
		if !ok {
			hi = rate
			break
		}
		lo = rate
		if max > 0 && rate >= max {
			return lo, tried, nil
		}
	}
	// Bisect; when even the start failed, lo is 0 and the search goes below it.
	for hi-lo > tolerance*hi && len(tried) < 40 {
		mid := (lo + hi) / 2
		if lo == 0 && mid < start/(1<<belowStart) {
			break
		}
		ok, err := try(mid)
		if err != nil {
			return lo, tried, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, tried, nil
}

// Sustained reports whether a run held its target rate: no missed
// objective and at least 99% of the target achieved.
func Sustained(r Report, objectives []Objective) bool {
	return len(r.Violations(objectives)) == 0 && r.AchievedRate >= 0.99*r.TargetRate && r.OK > 0
}

// belowStart is how many halvings below a failing start FindMax goes
// before it gives up: to start/64.
const belowStart = 6

// FindMaxProbes bounds the probes FindMax makes, so that a search can
// say how long it will take before it starts. The doubling makes one
// probe per rate from start until one fails; the bisection that follows
// narrows a gap of at most half the failing rate until it is within
// tolerance of the failing rate, which falls as probes fail: gap/2^k <=
// tolerance*(lo+gap/2^k) takes ceil(log2((1-tolerance)/tolerance))
// probes (5 at 5%). A server that fails even start is searched below it:
// up to belowStart halvings, then the bisection. Without a max the
// doublings are not known beforehand: it returns the probes after the
// doubling (bisect) and 0 for most; with maxRate, most bounds them all.
func FindMaxProbes(start, maxRate, tolerance float64) (bisect, most int) {
	bisect = int(math.Ceil(math.Log2((1 - tolerance) / tolerance)))
	if maxRate <= 0 {
		return bisect, 0
	}
	doublings := 1
	if maxRate > start {
		doublings += int(math.Ceil(math.Log2(maxRate / start)))
	}
	return bisect, bisect + max(doublings, 1+belowStart)
}
