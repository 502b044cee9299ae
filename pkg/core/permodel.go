package core

import (
	"sync"

	"github.com/infer-serving/infer/pkg/runner"
)

// perModel holds a value for each loaded model version, made on its first
// request. Requests read it without a lock; making a value takes the lock
// and forgets the versions unloaded since.
type perModel[T any] struct {
	by sync.Map // *runner.Model -> T
	mu sync.Mutex
}

// get returns m's value, made by create if m has none yet.
func (t *perModel[T]) get(m *runner.Model, create func(*runner.Model) T) T {
	if v, ok := t.by.Load(m); ok {
		return v.(T)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.by.Load(m); ok {
		return v.(T)
	}
	t.by.Range(func(old, _ any) bool {
		if old.(*runner.Model).Closed() { // unloaded: forget it
			t.by.Delete(old)
		}
		return true
	})
	v := create(m)
	t.by.Store(m, v)
	return v
}

// forget drops the values of the model versions drop matches.
func (t *perModel[T]) forget(drop func(*runner.Model) bool) {
	t.by.Range(func(m, _ any) bool {
		if drop(m.(*runner.Model)) {
			t.by.Delete(m)
		}
		return true
	})
}

// each calls f with every model version that has a value, and the value.
func (t *perModel[T]) each(f func(*runner.Model, T)) {
	t.by.Range(func(m, v any) bool {
		f(m.(*runner.Model), v.(T))
		return true
	})
}
