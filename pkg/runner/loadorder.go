package runner

import (
	"slices"
	"sync/atomic"
)

// CallLister returns the names of the models that a pipeline's or
// router's configuration calls; what it cannot read it leaves out (the
// load says what is wrong).
type CallLister func(Config) []string

var callLister atomic.Pointer[CallLister]

// RegisterCallLister sets the lister that orders composite loads (package
// pipeline registers itself when imported).
func RegisterCallLister(f CallLister) { callLister.Store(&f) }

// loadOrder returns names with the models that call no others first, in
// their given order, and then pipelines and routers each after the
// composites it calls (a depth-first topological order; the composites of
// a cycle keep their given order, and their loads fail naming the model
// they miss).
func (r *Repository) loadOrder(names []string) []string {
	var plain, composed []string
	calls := map[string][]string{}
	list := callLister.Load()
	for _, name := range names {
		if !r.isComposite(name) {
			plain = append(plain, name)
			continue
		}
		composed = append(composed, name)
		if cfg, err := r.readConfig(name); err == nil && list != nil {
			calls[name] = (*list)(cfg)
		}
	}
	out := plain
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(string)
	visit = func(name string) {
		if state[name] != unseen {
			return
		}
		state[name] = visiting
		for _, dep := range calls[name] {
			if slices.Contains(composed, dep) {
				visit(dep)
			}
		}
		state[name] = done
		out = append(out, name)
	}
	for _, name := range composed {
		visit(name)
	}
	return out
}
