package loadgen

import "math"

// minNoiseSeconds is the fewest seconds of timeline each run needs for
// a noise estimate: fewer say nothing about how a figure wanders.
const minNoiseSeconds = 3

// noise estimates how far a difference between two runs' figures can
// come from the runs' own wandering alone, as a fraction of a: the
// half-width of a 95% interval on the difference of the means of the
// per-second values (1.96 standard errors, Welch's, no pooling), taken
// from each run's timeline by of. It is 0 (unknown) when either run has
// fewer than minNoiseSeconds seconds with answers, or a is 0.
//
// A per-second p99 is not the run's p99, but how much it moves from one
// second to the next is the spread a second run of the same load would
// show; a change within it is not a change the runs can tell apart.
func noise(a, b Report, of func(SecondReport) float64) float64 {
	ma, va, na := secondStats(a.Timeline, of)
	_, vb, nb := secondStats(b.Timeline, of)
	if na < minNoiseSeconds || nb < minNoiseSeconds || ma == 0 {
		return 0
	}
	return 1.96 * math.Sqrt(va/float64(na)+vb/float64(nb)) / math.Abs(ma)
}

// secondStats returns the mean and sample variance of of over the
// seconds that had answers, and their number.
func secondStats(timeline []SecondReport, of func(SecondReport) float64) (mean, variance float64, n int) {
	var sum, sumSq float64
	for _, s := range timeline {
		if s.Requests == 0 {
			continue
		}
		v := of(s)
		sum += v
		sumSq += v * v
		n++
	}
	if n < 2 {
		return sum, 0, n
	}
	mean = sum / float64(n)
	variance = max(0, (sumSq-float64(n)*mean*mean)/float64(n-1))
	return mean, variance, n
}
