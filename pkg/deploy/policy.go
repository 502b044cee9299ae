// Package deploy holds how a model's versions share its traffic: the
// traffic policy (weights for canaries and blue-green switches, sticky A/B
// assignment, shadow mirroring) and its durable storage. Rollout engines
// change a policy step by step; the server applies it to every request
// that names no version.
package deploy

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strings"
)

// Policy spreads the requests that name no version over a model's
// versions.
type Policy struct {
	// Weights maps versions to their share of traffic; the shares need not
	// add up to anything in particular, only their ratios count. A version
	// at 0 gets no traffic but may stay loaded (a blue-green standby).
	Weights map[int64]float64 `json:"weights"`
	// Sticky, when set, assigns requests by a key instead of at random, so
	// the same key always lands on the same version (A/B tests): "id" for
	// the request id, or "header:Name" for a request header.
	Sticky string `json:"sticky,omitempty"`
	// Shadow, when set, also sends a fraction of requests to a version
	// whose answers are compared but never returned.
	Shadow *Shadow `json:"shadow,omitempty"`
}

// Shadow mirrors a fraction of requests to a version.
type Shadow struct {
	Version  int64   `json:"version"`
	Fraction float64 `json:"fraction"`
}

// StickyHeader returns the header name of a "header:Name" sticky key, or
// "" for none or "id".
func (p Policy) StickyHeader() string {
	name, ok := strings.CutPrefix(p.Sticky, "header:")
	if !ok {
		return ""
	}
	return name
}

// Validate checks the policy against the versions that are ready, naming
// what is wrong.
func (p Policy) Validate(ready func(version int64) bool) error {
	if len(p.Weights) == 0 {
		return errors.New("weights: no version")
	}
	total := 0.0
	for _, v := range slices.Sorted(maps.Keys(p.Weights)) {
		w := p.Weights[v]
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("weights: version %d has weight %v, want 0 or more", v, w)
		}
		if w > 0 && !ready(v) {
			return fmt.Errorf("weights: version %d is not loaded and ready", v)
		}
		total += w
	}
	if total <= 0 {
		return errors.New("weights: every version has weight 0")
	}
	if p.Sticky != "" && p.Sticky != "id" && p.StickyHeader() == "" {
		return fmt.Errorf("sticky %q: want \"id\" or \"header:Name\"", p.Sticky)
	}
	if s := p.Shadow; s != nil {
		if !(s.Fraction > 0 && s.Fraction <= 1) {
			return fmt.Errorf("shadow.fraction %v: want more than 0, at most 1", s.Fraction)
		}
		if !ready(s.Version) {
			return fmt.Errorf("shadow.version %d is not loaded and ready", s.Version)
		}
	}
	return nil
}

// Route picks the version for one request. With a sticky key given, the
// choice is a hash of the key; otherwise u, uniform in [0,1), decides.
// Either way a version gets requests in proportion to its weight.
func (p Policy) Route(key string, u float64) int64 {
	if p.Sticky != "" && key != "" {
		u = unit(key)
	}
	versions := slices.Sorted(maps.Keys(p.Weights))
	total := 0.0
	for _, v := range versions {
		total += p.Weights[v]
	}
	at := u * total
	var last int64
	for _, v := range versions {
		w := p.Weights[v]
		if w <= 0 {
			continue
		}
		last = v
		if at < w {
			return v
		}
		at -= w
	}
	return last // u rounding to the very top
}

// Mirror reports whether a request drawing u, uniform in [0,1), is also
// sent to the shadow version.
func (p Policy) Mirror(u float64) bool { return p.Shadow != nil && u < p.Shadow.Fraction }

// unit hashes a key to [0,1), uniformly and the same in every process:
// FNV-1a, whose high bits barely change between keys that differ at the
// end, finished with murmur3's 64-bit mixer, then the top 53 bits.
func unit(key string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}

// Weighted returns a policy sending every request to version v.
func Weighted(v int64) Policy { return Policy{Weights: map[int64]float64{v: 1}} }
