// Package window turns cumulative Prometheus histograms and counters,
// read at two moments, into figures for the time between them: rates and
// percentiles of a window rather than of a process's whole life. The
// rollout analysis and the live dashboard both read the server this way.
package window

import (
	"encoding/json"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// Bucket is one cumulative histogram bucket: how many observations were
// at most UpperBound.
type Bucket struct {
	UpperBound float64 `json:"upper_bound"`
	Count      uint64  `json:"count"`
}

// UnmarshalJSON reads a bucket, also as written before its fields had
// snake_case names (rollout states saved by earlier versions).
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var v struct {
		UpperBound *float64 `json:"upper_bound"`
		Earlier    *float64 `json:"UpperBound"`
		Count      uint64   `json:"count"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = Bucket{Count: v.Count}
	if v.UpperBound != nil {
		b.UpperBound = *v.UpperBound
	} else if v.Earlier != nil {
		b.UpperBound = *v.Earlier
	}
	return nil
}

// Histogram is a cumulative histogram read at one moment.
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets"` // ascending; the +Inf bucket may be left out
	// Native holds the same observations in fine buckets, when the
	// histogram keeps them (nil otherwise).
	Native *Native `json:"native,omitempty"`
}

// FromProto converts a client_golang histogram.
func FromProto(h *dto.Histogram) Histogram {
	out := Histogram{Count: h.GetSampleCount(), Sum: h.GetSampleSum(), Native: nativeFromProto(h)}
	for _, b := range h.GetBucket() {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCount()})
	}
	return out
}

// Delta returns the observations made between before and now. A counter
// that went down means the process restarted in between: everything now
// holds was observed since, so now is the delta. The native buckets are
// left out (nil) when they cannot be subtracted.
func Delta(now, before Histogram) Histogram {
	if now.Count < before.Count || len(now.Buckets) != len(before.Buckets) {
		return now
	}
	out := Histogram{Count: now.Count - before.Count, Sum: now.Sum - before.Sum, Buckets: make([]Bucket, len(now.Buckets)),
		Native: nativeDelta(now.Native, before.Native, before.Count)}
	for i, b := range now.Buckets {
		if b.UpperBound != before.Buckets[i].UpperBound || b.Count < before.Buckets[i].Count {
			return now // a different layout or a reset
		}
		out.Buckets[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - before.Buckets[i].Count}
	}
	return out
}

// Quantile estimates the q-th quantile (0..1) as Prometheus's
// histogram_quantile does: find the bucket holding the rank, interpolate
// linearly within it (from 0 for the first bucket), and return the
// highest finite bound when the rank falls in +Inf. NaN without
// observations.
//
// With native buckets it interpolates within the fine bin that holds the
// rank instead, a few percent from the true value at most.
func (h Histogram) Quantile(q float64) float64 {
	if h.Native != nil && h.Count > 0 && q >= 0 && q <= 1 {
		return binQuantile(h.Bins(), q)
	}
	if h.Count == 0 || len(h.Buckets) == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	i := sort.Search(len(h.Buckets), func(i int) bool { return float64(h.Buckets[i].Count) >= rank })
	if i == len(h.Buckets) || math.IsInf(h.Buckets[i].UpperBound, 1) {
		// In the +Inf bucket: the highest finite bound is all we know.
		for j := len(h.Buckets) - 1; j >= 0; j-- {
			if !math.IsInf(h.Buckets[j].UpperBound, 1) {
				return h.Buckets[j].UpperBound
			}
		}
		return math.NaN()
	}
	lower, below := 0.0, uint64(0)
	if i > 0 {
		lower, below = h.Buckets[i-1].UpperBound, h.Buckets[i-1].Count
	}
	inBucket := h.Buckets[i].Count - below
	if inBucket == 0 {
		return h.Buckets[i].UpperBound
	}
	return lower + (h.Buckets[i].UpperBound-lower)*(rank-float64(below))/float64(inBucket)
}

// Mean returns the mean observation, NaN without observations.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / float64(h.Count)
}

// CounterDelta returns a counter's increase between two reads; a counter
// that went down restarted, so now is the increase.
func CounterDelta(now, before float64) float64 {
	if now < before {
		return now
	}
	return now - before
}

// binQuantile interpolates the q-th quantile linearly within the bin
// holding its rank; NaN without observations.
func binQuantile(bins []Bin, q float64) float64 {
	rank := q * float64(Observations(bins))
	below := 0.0
	for _, b := range bins {
		if in := float64(b.Count); rank <= below+in {
			if math.IsInf(b.Upper, 1) {
				return b.Lower
			}
			return b.Lower + (b.Upper-b.Lower)*(rank-below)/in
		}
		below += float64(b.Count)
	}
	if len(bins) == 0 {
		return math.NaN()
	}
	return bins[len(bins)-1].Upper
}
