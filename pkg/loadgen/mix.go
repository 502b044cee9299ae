package loadgen

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync/atomic"
)

// MaxMixModels bounds the models of one Mix, so that the per-model
// figures a run keeps stay small (a few hundred kilobytes each).
const MaxMixModels = 1000

// sender is a target whose requests can be chosen: request i of its list.
type sender interface {
	Target
	send(ctx context.Context, r *Result, i int)
}

// Mix sends each request to one of several models, drawn by Zipf's law
// over their order: the first model is the most requested, and a long
// tail is asked for now and then. That is the workload of a server
// holding many models in a memory budget (Ollama's and ModelMesh's):
// a few hot models, and cold ones that load on demand. Each model owns
// per consecutive requests of the underlying target, model k's at
// [k×per, (k+1)×per), which it sends in turn. Retries (Retrying) go to
// the model first drawn.
type Mix struct {
	to     sender
	models []string
	index  map[string]int
	per    int
	zipf   *Zipf
	draws  atomic.Uint64
	turns  []atomic.Uint64 // per model
}

var _ Target = (*Mix)(nil)

// newMix returns a mix of models over to's requests, per a model, drawn
// with exponent s (0: uniform).
func newMix(to sender, models []string, per int, s float64, seed uint64) (*Mix, error) {
	if len(models) > MaxMixModels {
		return nil, fmt.Errorf("%d models: a mix takes at most %d", len(models), MaxMixModels)
	}
	z, err := NewZipf(len(models), s, seed)
	if err != nil {
		return nil, err
	}
	m := &Mix{to: to, models: models, index: map[string]int{}, per: per, zipf: z, turns: make([]atomic.Uint64, len(models))}
	for k, name := range models {
		if _, dup := m.index[name]; dup {
			return nil, fmt.Errorf("model %q is named twice in the mix", name)
		}
		m.index[name] = k
	}
	return m, nil
}

// Do implements Target: it draws a model (or keeps r.Model, for a retry)
// and sends that model's next request.
func (m *Mix) Do(ctx context.Context, r *Result) {
	k, ok := m.index[r.Model]
	if !ok {
		k = m.zipf.Rank(m.draws.Add(1) - 1)
		r.Model = m.models[k]
	}
	m.to.send(ctx, r, k*m.per+int(m.turns[k].Add(1)%uint64(m.per)))
}

// Share returns the share of requests model k (in the mix's order) is
// expected to get.
func (m *Mix) Share(k int) float64 { return m.zipf.P(k) }

// expandModels turns --models entries into model names: a name stands
// for itself; a glob (path.Match: *, ?, [a-z]) for every model of the
// server's repository index it matches, ready or not (a model unloaded
// on demand loads at its first request), in name order. index is only
// read when an entry is a glob.
func expandModels(entries []string, index func() ([]string, error)) ([]string, error) {
	var names []string
	var known []string
	seen := map[string]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if _, err := path.Match(e, ""); err != nil {
			return nil, fmt.Errorf("--models %q: %w", e, err)
		}
		if !strings.ContainsAny(e, "*?[") {
			if !seen[e] {
				seen[e] = true
				names = append(names, e)
			}
			continue
		}
		if known == nil {
			var err error
			if known, err = index(); err != nil {
				return nil, fmt.Errorf("--models %q needs the server's repository index: %w", e, err)
			}
			slices.Sort(known)
			known = slices.Compact(known)
		}
		matched := false
		for _, k := range known {
			if ok, _ := path.Match(e, k); ok {
				matched = true
				if !seen[k] {
					seen[k] = true
					names = append(names, k)
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("--models %q matches none of the server's %d models", e, len(known))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--models names no model: give names or globs such as 'm0*'")
	}
	return names, nil
}
