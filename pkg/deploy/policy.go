// Package deploy holds how a model's versions share its traffic: the
// traffic policy (weights for canaries and blue-green switches, sticky A/B
// assignment, shadow mirroring) and its durable storage. Rollout engines
// change a policy step by step; the server applies it to every request
// that names no version.
package deploy

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/infer-serving/infer/pkg/protocol"
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
	// Rollout is the revision of the rollout transition that set the
	// policy (State.Revision); 0 when a person set it.
	Rollout uint64 `json:"rollout_revision,omitempty"`
}

// String returns each version's share of the traffic, for logs: "1=95%
// 2=5%", by version (Shares); "none" when no version has weight.
func (p Policy) String() string {
	shares := p.Shares()
	if len(shares) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, v := range slices.Sorted(maps.Keys(shares)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d=%s%%", v, strconv.FormatFloat(100*shares[v], 'g', 4, 64))
	}
	return b.String()
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
	positive := false
	for _, v := range slices.Sorted(maps.Keys(p.Weights)) {
		w := p.Weights[v]
		if v < 1 {
			return fmt.Errorf("weights: version %d: versions are numbered from 1 (0 would mean whichever is latest, not a version)", v)
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("weights: version %d has weight %v, want a finite number, 0 or more", v, w)
		}
		if w > 0 && !ready(v) {
			return fmt.Errorf("weights: version %d is not loaded and ready", v)
		}
		positive = positive || w > 0
	}
	if !positive {
		return errors.New("weights: every version has weight 0")
	}
	if p.Sticky != "" && p.Sticky != "id" && p.StickyHeader() == "" {
		return fmt.Errorf("sticky %s: want \"id\" or \"header:Name\"", protocol.Clip(p.Sticky))
	}
	if s := p.Shadow; s != nil {
		if s.Version < 1 {
			return fmt.Errorf("shadow.version %d: versions are numbered from 1", s.Version)
		}
		if !(s.Fraction > 0 && s.Fraction <= 1) {
			return fmt.Errorf("shadow.fraction %v: want more than 0, at most 1", s.Fraction)
		}
		if !ready(s.Version) {
			return fmt.Errorf("shadow.version %d is not loaded and ready", s.Version)
		}
	}
	return nil
}

// Router is a policy prepared for the per-request path: its versions
// sorted and their weights summed once, so that a pick neither sorts nor
// allocates.
type Router struct {
	Policy
	versions []int64   // ascending, those with weight above 0
	upTo     []float64 // upTo[i]: the summed weights of versions[:i+1]
}

// Router prepares p for routing.
func (p Policy) Router() *Router {
	r := &Router{Policy: p}
	total, shares := 0.0, p.Shares()
	for _, v := range slices.Sorted(maps.Keys(shares)) {
		total += shares[v]
		r.versions = append(r.versions, v)
		r.upTo = append(r.upTo, total)
	}
	return r
}

// Shares returns each version's share of the traffic, in (0, 1], summing
// to 1 up to rounding: versions with weight 0 (or a weight that is not a
// finite positive number, which Validate refuses) are left out. Weights
// are divided by the largest before they are summed, so that neither huge
// weights (1e308 twice would sum to +Inf) nor tiny ones (subnormal, whose
// sum would lose their ratio) route unlike their ratios declare.
func (p Policy) Shares() map[int64]float64 {
	largest := 0.0
	for _, w := range p.Weights {
		if w > largest && !math.IsInf(w, 1) {
			largest = w
		}
	}
	out := map[int64]float64{}
	if largest == 0 {
		return out
	}
	total := 0.0
	for _, w := range p.Weights {
		if w > 0 && !math.IsInf(w, 1) {
			total += w / largest // each at most 1: no overflow
		}
	}
	for v, w := range p.Weights {
		if w > 0 && !math.IsInf(w, 1) {
			out[v] = w / largest / total
		}
	}
	return out
}

// Route picks the version for one request. With a sticky key given, the
// choice is a hash of the key; otherwise u, uniform in [0,1), decides.
// Either way a version gets requests in proportion to its weight. A policy
// with no weight above 0 (which Validate refuses) routes to version 0.
func (r *Router) Route(key string, u float64) int64 {
	if len(r.versions) == 0 {
		return 0
	}
	if r.Sticky != "" && key != "" {
		u = unit(key)
	}
	at := u * r.upTo[len(r.upTo)-1]
	for i, upTo := range r.upTo {
		if at < upTo {
			return r.versions[i]
		}
	}
	return r.versions[len(r.versions)-1] // u rounding to the very top
}

// Mirror reports whether a request drawing u, uniform in [0,1), is also
// sent to the shadow version.
func (p Policy) Mirror(u float64) bool { return p.Shadow != nil && u < p.Shadow.Fraction }

// unit hashes a key to [0,1), uniformly and the same in every process:
// FNV-1a, whose high bits barely change between keys that differ at the
// end, finished with murmur3's 64-bit mixer, then the top 53 bits.
func unit(key string) float64 {
	x := uint64(14695981039346656037) // FNV-1a, inline: no hasher to allocate
	for i := 0; i < len(key); i++ {
		x ^= uint64(key[i])
		x *= 1099511628211
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}

// Weighted returns a policy sending every request to version v.
func Weighted(v int64) Policy { return Policy{Weights: map[int64]float64{v: 1}} }
