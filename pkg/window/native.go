package window

import (
	"encoding/json"
	"maps"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// Native is a histogram's observations in Prometheus native-histogram
// buckets: exponential, each 2^(2^-Schema) times as wide as the one below
// (4.4% at schema 4), so that a rank test or a quantile read from them is
// off by a few percent at most, where the classic buckets may be off by
// 70%. Bucket i holds the observations in (base^(i-1), base^i]; those at
// most ZeroThreshold are counted apart. Negative observations (never a
// duration) are left out.
type Native struct {
	Schema        int32            `json:"schema"`
	ZeroThreshold float64          `json:"zero_threshold"`
	ZeroCount     uint64           `json:"zero_count"`
	Positive      map[int32]uint64 `json:"positive"` // bucket index → observations; empty buckets left out
}

// UnmarshalJSON reads native buckets, also as written before their
// fields had snake_case names (rollout states saved by earlier versions).
func (n *Native) UnmarshalJSON(data []byte) error {
	type fields Native
	var v struct {
		fields
		EarlierThreshold *float64 `json:"ZeroThreshold"`
		EarlierCount     *uint64  `json:"ZeroCount"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*n = Native(v.fields)
	if v.EarlierThreshold != nil {
		n.ZeroThreshold = *v.EarlierThreshold
	}
	if v.EarlierCount != nil {
		n.ZeroCount = *v.EarlierCount
	}
	return nil
}

// nativeFromProto decodes a histogram's native buckets (spans of indexes,
// counts delta-encoded from one bucket to the next); nil when it has none.
func nativeFromProto(h *dto.Histogram) *Native {
	if len(h.GetPositiveSpan()) == 0 && h.GetZeroThreshold() == 0 && h.GetZeroCount() == 0 {
		return nil
	}
	n := &Native{Schema: h.GetSchema(), ZeroThreshold: h.GetZeroThreshold(), ZeroCount: h.GetZeroCount(), Positive: map[int32]uint64{}}
	deltas := h.GetPositiveDelta()
	var index int32
	var count int64
	d := 0
	for i, span := range h.GetPositiveSpan() {
		if i == 0 {
			index = span.GetOffset()
		} else {
			index += span.GetOffset()
		}
		for range span.GetLength() {
			if d < len(deltas) {
				count += deltas[d]
				d++
			}
			if count > 0 {
				n.Positive[index] = uint64(count)
			}
			index++
		}
	}
	return n
}

// nativeDelta returns the observations made between before and now, or
// nil when they cannot be told apart (a different schema, a bucket that
// went down, or no native buckets read at the start of a window that
// already held observations).
func nativeDelta(now, before *Native, beforeCount uint64) *Native {
	switch {
	case now == nil:
		return nil
	case before == nil && beforeCount == 0:
		return now
	case before == nil, now.Schema != before.Schema, now.ZeroThreshold != before.ZeroThreshold, now.ZeroCount < before.ZeroCount:
		return nil
	}
	out := &Native{Schema: now.Schema, ZeroThreshold: now.ZeroThreshold, ZeroCount: now.ZeroCount - before.ZeroCount, Positive: make(map[int32]uint64, len(now.Positive))}
	for i, c := range now.Positive {
		b := before.Positive[i]
		if c < b {
			return nil
		}
		if c > b {
			out.Positive[i] = c - b
		}
	}
	for i, b := range before.Positive {
		if b > now.Positive[i] {
			return nil // a bucket that emptied: a reset
		}
	}
	return out
}

// Bin is Count observations in (Lower, Upper].
type Bin struct {
	Lower, Upper float64
	Count        uint64
}

// Bins returns the histogram's observations as ascending bins holding at
// least one each: the native buckets when it has them, else the classic
// ones, whose top bin is (highest finite bound, +Inf] when observations
// fell past it.
func (h Histogram) Bins() []Bin {
	if n := h.Native; n != nil {
		var out []Bin
		if n.ZeroCount > 0 {
			out = append(out, Bin{0, n.ZeroThreshold, n.ZeroCount})
		}
		base := math.Exp2(math.Exp2(-float64(n.Schema)))
		for _, i := range slices.Sorted(maps.Keys(n.Positive)) {
			upper := math.Pow(base, float64(i))
			out = append(out, Bin{max(upper/base, n.ZeroThreshold), upper, n.Positive[i]})
		}
		return out
	}
	var out []Bin
	lower, below := 0.0, uint64(0)
	for _, b := range h.Buckets {
		if b.Count > below {
			out = append(out, Bin{lower, b.UpperBound, b.Count - below})
		}
		lower, below = b.UpperBound, max(below, b.Count)
	}
	if h.Count > below {
		out = append(out, Bin{lower, math.Inf(1), h.Count - below})
	}
	return out
}

// Observations returns how many observations the bins hold.
func Observations(bins []Bin) uint64 {
	var n uint64
	for _, b := range bins {
		n += b.Count
	}
	return n
}

// Ranked returns the bin holding the k-th smallest observation (1-based);
// ok is false when k is 0 or past the last.
func Ranked(bins []Bin, k uint64) (Bin, bool) {
	if k == 0 {
		return Bin{}, false
	}
	for _, b := range bins {
		if k <= b.Count {
			return b, true
		}
		k -= b.Count
	}
	return Bin{}, false
}
