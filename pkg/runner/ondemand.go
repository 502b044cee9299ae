package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"runtime/debug"
	"time"
)

// fileStamp identifies the contents of a model file as poll mode sees
// them: its size and modification time.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func (r *Repository) stampOf(file string) fileStamp {
	st, err := fs.Stat(r.src, file)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.Size(), st.ModTime()}
}

// modelPath is a version's file relative to the source's root.
func (r *Repository) modelPath(name, file string) string {
	if r.single != "" {
		return file
	}
	return path.Join(name, file)
}

// start loads the named models, or in on-demand mode scans them, then
// starts the sweeper (on-demand) or the poller (poll).
func (r *Repository) start(names []string) error {
	var errs []error
	// Pipelines and routers load after the models they call, which they
	// check their steps against.
	for _, name := range r.loadOrder(names) {
		if r.ctl.Mode == ControlOnDemand {
			errs = append(errs, r.scan(name))
		} else {
			errs = append(errs, r.Load(name))
		}
	}
	r.ctl.started.Store(true)
	switch r.ctl.Mode {
	case ControlOnDemand:
		r.mu.RLock()
		pinned := r.loadedBytes() // the warm models, loaded at start
		r.mu.RUnlock()
		if b := r.ctl.MemoryBudget; b > 0 && pinned > b {
			r.log().Warn("the models kept warm take more than the memory budget: every other load is refused until it is raised",
				"warm", FormatBytes(pinned), "budget", FormatBytes(b))
		}
		r.ctl.wg.Add(1)
		go r.sweep()
	case ControlPoll:
		r.recordConfigs(names)
		r.ctl.wg.Add(1)
		go r.poll()
	}
	return errors.Join(errs...)
}

// loadFailed leaves v, whose load failed with err, unloaded (under the
// repository's lock, or before v is in it): in on-demand mode a request
// after the back-off loads it again (the host may have been killed, the
// file fixed), and until then requests get a *LoadError.
func (v *version) loadFailed(name string, err error) {
	v.model, v.unloaded = nil, true
	v.failures++
	v.retryAt = time.Now().Add(loadRetry(v.failures))
	v.err = &LoadError{Model: name, Version: v.num, Failures: v.failures, RetryAt: v.retryAt, Err: err}
}

// scan records model name's versions without loading them, except a warm
// model's, which load now and stay.
func (r *Repository) scan(name string) error {
	cfg, files := Config{}, map[int64]string{1: r.singleFile}
	if r.single == "" {
		var err error
		if cfg, files, err = r.layout(name); err != nil {
			r.mu.Lock()
			r.models[name] = map[int64]*version{0: {err: err}}
			r.mu.Unlock()
			return err
		}
	}
	warm := r.ctl.warm[name] || cfg.Warm
	versions := map[int64]*version{}
	var errs []error
	for v, file := range files {
		if warm {
			versions[v] = r.loadVersion(name, v, file, cfg)
			if err := versions[v].err; err != nil {
				errs = append(errs, err)
				versions[v].loadFailed(name, err)
			}
			continue
		}
		nv := &version{err: errors.New("unloaded: loads at its first request"), slot: slot{num: v, file: file, cfg: cfg, unloaded: true}}
		nv.stamp = r.stampOf(r.modelPath(name, file))
		versions[v] = nv
	}
	r.mu.Lock()
	r.models[name] = versions
	r.mu.Unlock()
	return errors.Join(errs...)
}

// loadMeasured loads a version and measures its memory (see memory.go).
func (r *Repository) loadMeasured(name string, v int64, data []byte, cfg Config, opts LoadOptions) (*Model, int64, error) {
	iso := opts.isolation(cfg)
	var m *Model
	var err error
	var grown int64
	if iso == IsolationNone {
		heapLoads.Lock()
		before := cHeapInUse()
		m, err = LoadModel(name, v, data, cfg, opts)
		grown = max(cHeapInUse()-before, 0)
		heapLoads.Unlock()
	} else {
		m, err = LoadModel(name, v, data, cfg, opts)
	}
	if err != nil {
		return nil, 0, err
	}
	bytes, hosted := hostsRSS(m)
	if !hosted {
		bytes = grown
	}
	r.ctl.learn(bytes/int64(instances(cfg)) - int64(len(data)))
	return m, bytes, nil
}

// instances is how many sessions (in their hosts) a version of cfg runs,
// each holding its own copy of the model.
func instances(cfg Config) int { return max(cfg.Instances, 1) }

// learn keeps the largest memory an instance took beyond its file's size,
// for estimates of versions never loaded yet.
func (c *control) learn(overhead int64) {
	defer c.measured.Store(true)
	for {
		cur := c.overhead.Load()
		if overhead <= cur || c.overhead.CompareAndSwap(cur, overhead) {
			return
		}
	}
}

// estimate is the memory version v is expected to take: what it took
// when last loaded, else, for each of its instances, its file's size plus
// the largest overhead an instance was seen to take.
func (r *Repository) estimate(v *version) int64 {
	if b := v.bytes.Load(); b > 0 {
		return b
	}
	return int64(instances(v.cfg)) * (v.stamp.size + r.ctl.overhead.Load())
}

// loadOnDemand is an on-demand load of version v of model name; done is
// closed when it ends. Its waiters each get a lease on success.
func (r *Repository) loadOnDemand(name string, v *version, done chan struct{}) {
	defer r.ctl.wg.Done()
	if !r.ctl.measured.Load() {
		// Nothing measured yet: one load at a time until one is.
		r.ctl.firstLoad.Lock()
		if r.ctl.measured.Load() {
			r.ctl.firstLoad.Unlock()
		} else {
			defer r.ctl.firstLoad.Unlock()
		}
	}
	need := r.estimate(v)
	err := r.makeRoom(name, v, need)
	var nv *version
	start := time.Now()
	if err == nil {
		nv = r.loadVersion(name, v.num, v.file, v.cfg)
	}
	cold := time.Since(start)

	r.mu.Lock()
	current := r.models[name][v.num] == v
	switch {
	case err != nil:
		v.err = err // still unloaded: the next request tries again
	case nv.model != nil && current:
		v.model, v.digest, v.err, v.unloaded, v.failures = nv.model, nv.digest, nil, false, 0
		v.bytes.Store(nv.bytes.Load())
		v.lastUsed.Store(time.Now().UnixNano())
		v.leases.Add(v.waiters)
	case current:
		v.loadFailed(name, nv.err)
	}
	if err == nil && r.ctl.MemoryBudget > 0 {
		r.ctl.reserved -= need
	}
	v.waiters, v.loading = 0, nil
	r.mu.Unlock()
	if err == nil && nv.model != nil && current {
		// Told before the waiters wake: a load is counted by the time its
		// first request is answered.
		r.ctl.emit(ControlEvent{Model: name, Version: v.num, Kind: EventLoad, Reason: ReasonOnDemand, Bytes: nv.bytes.Load(), ColdStart: cold})
	}
	close(done)

	switch {
	case err != nil:
		r.log().Warn("model not loaded on demand", "model", name, "version", v.num, "err", err)
	case nv.model == nil && current:
		r.log().Error("model failed to load on demand", "model", name, "version", v.num, "err", nv.err)
	case nv.model != nil && !current:
		nv.model.Close() // unloaded or replaced while it loaded
	case nv.model != nil:
		r.fit()
	}
	r.ctl.notify()
}

func (r *Repository) log() *slog.Logger {
	if r.opts.Logger != nil {
		return r.opts.Logger
	}
	return slog.Default()
}

// makeRoom reserves need bytes under the budget for a load of version v,
// first evicting the least recently used idle versions when they make
// enough room, else waiting for versions to go idle, up to BudgetWait.
func (r *Repository) makeRoom(name string, v *version, need int64) error {
	budget := r.ctl.MemoryBudget
	if budget == 0 {
		return nil
	}
	refuse := func(why string) error {
		return &BudgetError{Model: name, Version: v.num, Need: need, Budget: budget, RetryAfter: r.ctl.BudgetWait, Reason: why}
	}
	if need > budget { // no wait makes room: no retry hint
		return &BudgetError{Model: name, Version: v.num, Need: need, Budget: budget, Reason: "larger than the whole budget (raise --memory-budget)"}
	}
	r.mu.RLock()
	var pinned int64
	for _, c := range r.candidates() {
		if r.ctl.keepAlive(c.name, r.models[c.name][c.version]) < 0 {
			pinned += c.bytes
		}
	}
	r.mu.RUnlock()
	if pinned+need > budget { // nor while the pinned versions stay
		return &BudgetError{Model: name, Version: v.num, Need: need, Budget: budget,
			Reason: fmt.Sprintf("the versions kept loaded (warm, keep_alive -1) take %s of it (raise --memory-budget, or keep fewer warm)", FormatBytes(pinned))}
	}
	timer := time.NewTimer(r.ctl.BudgetWait)
	defer timer.Stop()
	r.ctl.waiting.Add(1)
	defer r.ctl.waiting.Add(-1)
	for {
		changed := r.ctl.changes() // before the check: no wake-up falls between
		r.mu.Lock()
		used := r.loadedBytes() + r.ctl.reserved
		victims, ok := lruVictims(r.candidates(), used, need, budget)
		if ok {
			r.ctl.reserved += need
			closing := r.detach(victims, ReasonBudget)
			r.mu.Unlock()
			r.closeDetached(closing, ReasonBudget)
			return nil
		}
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return refuse(fmt.Sprintf("%s of %s in use by versions that are busy or pinned, for %s", FormatBytes(used), FormatBytes(budget), r.ctl.BudgetWait))
		case <-r.ctl.ctx.Done():
			return refuse("the server is shutting down")
		}
	}
}

// loadedBytes sums the loaded versions' memory (under r.mu).
func (r *Repository) loadedBytes() int64 {
	var n int64
	for _, versions := range r.models {
		for _, v := range versions {
			if v.model != nil {
				n += v.bytes.Load()
			}
		}
	}
	return n
}

// candidates lists the loaded versions for eviction (under r.mu).
func (r *Repository) candidates() []candidate {
	var out []candidate
	for name, versions := range r.models {
		for num, v := range versions {
			if v.model == nil {
				continue
			}
			held := v.leases.Load() > 0 || r.ctl.keepAlive(name, v) < 0
			out = append(out, candidate{name: name, version: num, bytes: v.bytes.Load(), lastUsed: v.lastUsed.Load(), held: held})
		}
	}
	return out
}

// detached is a version taken out of service, to close.
type detached struct {
	name  string
	num   int64
	bytes int64
	model *Model
}

// detach takes the chosen versions out of service (under r.mu, written):
// each stays in the index, unloaded, and loads again at its next request.
func (r *Repository) detach(victims []candidate, reason string) []detached {
	var out []detached
	for _, c := range victims {
		v := r.models[c.name][c.version]
		if v == nil || v.model == nil {
			continue
		}
		out = append(out, detached{c.name, c.version, v.bytes.Load(), v.model})
		v.model, v.unloaded, v.failures = nil, true, 0
		v.err = fmt.Errorf("unloaded (%s): loads again at its next request", reason)
	}
	return out
}

// closeDetached closes versions taken out of service; each answers what
// it has queued first.
func (r *Repository) closeDetached(ds []detached, reason string) {
	for _, d := range ds {
		d.model.Close()
		r.log().Info("model unloaded", "model", d.name, "version", d.num, "reason", reason, "bytes", d.bytes)
		r.ctl.emit(ControlEvent{Model: d.name, Version: d.num, Kind: EventUnload, Reason: reason, Bytes: d.bytes})
	}
	if len(ds) > 0 {
		r.ctl.notify()
	}
}

// fit evicts idle versions while the loaded ones measure over the
// budget (a load that took more than its estimate, hosts that grew).
func (r *Repository) fit() {
	if r.ctl.MemoryBudget == 0 {
		return
	}
	r.mu.Lock()
	victims, _ := lruVictims(r.candidates(), r.loadedBytes()+r.ctl.reserved, 0, r.ctl.MemoryBudget)
	closing := r.detach(victims, ReasonBudget)
	r.mu.Unlock()
	r.closeDetached(closing, ReasonBudget)
}

// sweep unloads the versions idle past their keep_alive and measures the
// model hosts again, every sweepEvery, until the repository closes.
func (r *Repository) sweep() {
	r.ctl.every(sweepEvery, func() {
		r.expire(time.Now())
		r.remeasure()
		r.fit()
	})
}

// every calls f every period until the repository closes; it is one of
// control's goroutines (counted in wg before it starts).
func (c *control) every(period time.Duration, f func()) {
	defer c.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// expire unloads the idle versions whose keep_alive has passed.
func (r *Repository) expire(now time.Time) {
	r.mu.Lock()
	var victims []candidate
	for name, versions := range r.models {
		for num, v := range versions {
			ka := r.ctl.keepAlive(name, v)
			if v.model == nil || ka < 0 || v.leases.Load() > 0 {
				continue
			}
			if now.Sub(time.Unix(0, v.lastUsed.Load())) >= ka {
				victims = append(victims, candidate{name: name, version: num})
			}
		}
	}
	closing := r.detach(victims, ReasonKeepAlive)
	r.mu.Unlock()
	r.closeDetached(closing, ReasonKeepAlive)
	if len(closing) > 0 {
		// Idle versions went: the point is to give their memory back, and
		// the Go heap keeps what loads and requests freed until its
		// scavenger gets to it, minutes later. Budget evictions, on the
		// request path, leave it to the scavenger.
		debug.FreeOSMemory()
	}
}

// remeasure updates hosted versions' memory from their hosts' RSS.
func (r *Repository) remeasure() {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, versions := range r.models {
		for _, v := range versions {
			if v.model == nil {
				continue
			}
			if n, ok := hostsRSS(v.model); ok && n > 0 {
				v.bytes.Store(n)
			}
		}
	}
}

// unloadKeeping unloads every loaded version of model name in on-demand
// mode: they stay in the index and load again at their next request.
func (r *Repository) unloadKeeping(name string) error {
	r.mu.Lock()
	versions, ok := r.models[name]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrModelNotFound, QuoteName(name))
	}
	var all []candidate
	for num := range versions {
		all = append(all, candidate{name: name, version: num})
	}
	closing := r.detach(all, ReasonAdmin)
	r.mu.Unlock()
	r.closeDetached(closing, ReasonAdmin)
	return nil
}

// halt stops the sweeper or poller and waits for loads in progress.
func (c *control) halt() {
	c.stop()
	c.wg.Wait()
}
