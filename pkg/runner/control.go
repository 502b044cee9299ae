package runner

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/yamlfile"
)

// ControlMode says how the set of loaded model versions changes while the
// server runs; the names are Triton's --model-control-mode, plus on-demand
// (Ollama's and ModelMesh's load at first request).
type ControlMode string

const (
	// ControlNone loads every model at start and refuses the admin API's
	// load and unload (Triton's none).
	ControlNone ControlMode = "none"
	// ControlPoll loads every model at start and rereads the repository
	// every poll interval: new and changed versions load, removed ones
	// drain and unload; the admin API's load and unload are refused, as
	// Triton refuses them while polling.
	ControlPoll ControlMode = "poll"
	// ControlExplicit loads every model at start (Triton's explicit with
	// --load-model=*) and changes only through the admin API. The default.
	ControlExplicit ControlMode = "explicit"
	// ControlOnDemand scans the repository at start and loads a version at
	// its first request; idle versions unload after their keep_alive, and
	// the least recently used idle ones make room under a memory budget.
	ControlOnDemand ControlMode = "on-demand"
)

// ControlModes lists the modes, for flags' help and errors.
var ControlModes = []ControlMode{ControlNone, ControlPoll, ControlExplicit, ControlOnDemand}

// ParseControlMode reads a --model-control-mode value ("" is explicit).
func ParseControlMode(s string) (ControlMode, error) {
	if s == "" {
		return ControlExplicit, nil
	}
	for _, m := range ControlModes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("model control mode %q: want one of none, poll, explicit, on-demand", s)
}

// Defaults of Control.
const (
	// DefaultKeepAlive is how long an on-demand version stays loaded after
	// its last request, Ollama's default.
	DefaultKeepAlive = 5 * time.Minute
	// DefaultPollInterval is Triton's --repository-poll-secs default.
	DefaultPollInterval = 15 * time.Second
	// DefaultBudgetWait bounds how long a load waits for loaded versions
	// to go idle when the budget has no room; the request then gets
	// ErrMemoryBudget (503, Retry-After).
	DefaultBudgetWait = 5 * time.Second
	// sweepEvery is how often keep_alive expiry is checked and the model
	// hosts' memory measured again.
	sweepEvery = time.Second
)

// Control is a repository's model control: its mode and the bounds of
// what it keeps loaded. The zero value is explicit mode without a budget.
type Control struct {
	Mode ControlMode
	// KeepAlive is how long an on-demand version stays loaded after its
	// last request when its config.yaml sets no keep_alive (0:
	// DefaultKeepAlive; negative: until evicted or unloaded).
	KeepAlive time.Duration
	// MemoryBudget bounds the bytes of the loaded versions, each measured
	// at load (the host processes' resident memory where models run
	// isolated, the C heap the runtime allocated otherwise), in bytes (0:
	// none). Past it, loads evict the least recently used idle versions.
	MemoryBudget int64
	// BudgetWait bounds a load's wait for room (0: DefaultBudgetWait).
	BudgetWait time.Duration
	// LoadWait bounds a request's wait for an on-demand load (0: until
	// its context ends); the load goes on. infer serve sets it to
	// --default-timeout.
	LoadWait time.Duration
	// PollInterval is how often poll mode rereads the repository (0:
	// DefaultPollInterval).
	PollInterval time.Duration
	// Warm names the models loaded at start in on-demand mode and never
	// evicted (as a model's config.yaml warm: true does); WarmAll names
	// every model of the repository.
	Warm []string
}

// WarmAll in Control.Warm keeps every model of the repository warm, as
// Triton's --load-model=* loads every model at start.
const WarmAll = "*"

// KeepAlive is a model's keep_alive in config.yaml: a duration ("10m"),
// a number of seconds, or -1 for never unloading it (Ollama's forms).
type KeepAlive time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (k *KeepAlive) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlfile.ValueError(n, "keep_alive: want a duration such as 10m, seconds, or -1 (never unload)")
	}
	if s, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		if s < 0 {
			*k = -1
		} else {
			*k = KeepAlive(time.Duration(s) * time.Second)
		}
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return yamlfile.ValueError(n, "keep_alive %q: want a duration such as 10m, seconds, or -1 (never unload)", n.Value)
	}
	*k = KeepAlive(max(d, -1))
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (k KeepAlive) MarshalYAML() (any, error) {
	if k < 0 {
		return -1, nil
	}
	return time.Duration(k).String(), nil
}

// ErrModelControl: the admin API's load or unload in a mode that does not
// allow it (none, poll).
var errModelControl = fmt.Errorf("%w: explicit model load and unload are not allowed", ErrInvalidInput)

// Reasons a version loads or unloads, as ControlEvent and the metrics
// name them.
const (
	ReasonStart     = "start"      // loaded at start
	ReasonOnDemand  = "on_demand"  // loaded at its first request
	ReasonPoll      = "poll"       // poll mode saw it appear or change
	ReasonKeepAlive = "keep_alive" // unloaded idle past its keep_alive
	ReasonBudget    = "budget"     // evicted to make room under the budget
	ReasonRemoved   = "removed"    // poll mode saw it leave the repository
	ReasonReplaced  = "replaced"   // poll mode loaded its changed files
	ReasonAdmin     = "admin"      // unloaded through the admin API
)

// Kinds of ControlEvent.
const (
	EventLoad   = "load"
	EventUnload = "unload"
	// EventWait is a request's wait for an on-demand load it did not start
	// or did: the first-request wait.
	EventWait = "wait"
)

// ControlEvent is one version loading or unloading, or a request's wait
// for a load, for metrics.
type ControlEvent struct {
	Model   string
	Version int64
	Kind    string // EventLoad, EventUnload or EventWait
	// Reason is why a version loaded or unloaded (ReasonStart, ...).
	Reason string
	// Bytes is the version's measured memory.
	Bytes int64
	// ColdStart is an on-demand load's duration, from the decision to
	// load (room made) to ready; Wait a first request's wait for it.
	ColdStart, Wait time.Duration
}

// slot is what model control keeps of one version beside its model:
// where its file is, its use, its size and its loading.
type slot struct {
	num   int64  // the version number
	file  string // relative to the model's folder (the source's root for a single file)
	cfg   Config
	stamp fileStamp // the model file when read, for poll mode
	// unloaded: the version can be loaded (on demand) but is not.
	unloaded bool
	// leases counts the requests holding the loaded model; lastUsed is
	// the last one's start, in Unix nanoseconds; bytes the measured size.
	leases   atomic.Int64
	lastUsed atomic.Int64
	bytes    atomic.Int64
	// loading is closed when a load in progress ends (under the
	// repository's lock), waiters counts the requests waiting on it.
	loading chan struct{}
	waiters int64
	// failures counts the on-demand loads that failed in a row; until
	// retryAt, requests get the last one's error (a *LoadError).
	failures int
	retryAt  time.Time
}

// control is a repository's model control state.
type control struct {
	Control
	// leasing: requests lease the version they use (on-demand and poll),
	// so that nothing unloads a version under a request.
	leasing bool
	started atomic.Bool // after Open: the admin API's rule applies
	warm    map[string]bool

	reserved int64        // bytes reserved by loads in progress (under Repository.mu)
	overhead atomic.Int64 // the most an instance took beyond its file, in bytes
	// measured is set once a load has been measured (and overhead
	// learned); until then on-demand loads run one at a time, under
	// firstLoad, so that a wave of cold loads, each estimated at its
	// file's size alone, cannot pass the memory budget many times over.
	measured  atomic.Bool
	firstLoad sync.Mutex
	// Poll mode's record (under Repository.mu): each model's config.yaml,
	// and the model files whose load failed, so they are not retried
	// until they change.
	configs map[string]fileStamp
	failed  map[string]fileStamp
	observe atomic.Pointer[func(ControlEvent)]

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed when a lease ends or a version unloads
	waiting atomic.Int32

	ctx  context.Context // ends when the repository closes
	stop context.CancelFunc
	wg   sync.WaitGroup // the sweeper, the poller, loads in progress
}

func newControl(c Control) *control {
	if c.Mode == "" {
		c.Mode = ControlExplicit
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.BudgetWait <= 0 {
		c.BudgetWait = DefaultBudgetWait
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	ctl := &control{Control: c, changed: make(chan struct{}),
		leasing: c.Mode == ControlOnDemand || c.Mode == ControlPoll, warm: map[string]bool{},
		configs: map[string]fileStamp{}, failed: map[string]fileStamp{}}
	ctl.ctx, ctl.stop = context.WithCancel(context.Background())
	for _, w := range c.Warm {
		ctl.warm[w] = true
	}
	return ctl
}

// emit tells the observer of an event.
func (c *control) emit(e ControlEvent) {
	if f := c.observe.Load(); f != nil {
		(*f)(e)
	}
}

// notify wakes the loads waiting for room.
func (c *control) notify() {
	if c.waiting.Load() == 0 {
		return
	}
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *control) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// refuse returns why the admin API may not load or unload now.
func (c *control) refuse(what string) error {
	if c.started.Load() && (c.Mode == ControlNone || c.Mode == ControlPoll) {
		return fmt.Errorf("%w in model control mode %s (%s refused; use --model-control-mode explicit or on-demand)", errModelControl, c.Mode, what)
	}
	return nil
}

// keepAlive returns how long version v stays loaded idle (negative:
// always).
func (c *control) keepAlive(name string, v *version) time.Duration {
	if c.warm[name] || v.cfg.Warm {
		return -1
	}
	if v.cfg.KeepAlive != nil {
		return time.Duration(*v.cfg.KeepAlive)
	}
	return c.KeepAlive
}

// Observe sets the function told of every load and unload (nil: none).
func (r *Repository) Observe(f func(ControlEvent)) {
	if f == nil {
		r.ctl.observe.Store(nil)
		return
	}
	r.ctl.observe.Store(&f)
}

// ControlMode returns the repository's model control mode.
func (r *Repository) ControlMode() ControlMode { return r.ctl.Mode }

// MemoryBudget returns the repository's memory budget, in bytes (0: none).
func (r *Repository) MemoryBudget() int64 { return r.ctl.MemoryBudget }

// lease marks v used now and, with leasing on and a request context that
// ends, holds v loaded until ctx ends. Called under r.mu (read or write),
// so that no eviction falls between the lookup and the lease.
func (r *Repository) lease(ctx context.Context, v *version) {
	v.lastUsed.Store(time.Now().UnixNano())
	if !r.ctl.leasing || ctx.Done() == nil {
		return
	}
	v.leases.Add(1)
	context.AfterFunc(ctx, func() { r.release(v) })
}

func (r *Repository) release(v *version) {
	if v.leases.Add(-1) == 0 {
		r.ctl.notify()
	}
}

// Acquire returns a ready version of model name, as Model does, loading
// it first in on-demand mode when it is not loaded: the caller waits,
// bounded by ctx, and concurrent first requests share one load. The
// version stays loaded at least until ctx ends. Errors: ErrModelNotFound,
// ErrModelNotReady, ErrMemoryBudget (a *BudgetError), or ctx's error.
func (r *Repository) Acquire(ctx context.Context, name string, version int64) (*Model, error) {
	for range 3 { // a load whose version is unloaded again at once is retried
		r.mu.RLock()
		m, v, err := r.pick(name, version)
		if m != nil {
			r.lease(ctx, v)
		}
		r.mu.RUnlock()
		if m != nil || v == nil {
			return m, err
		}
		if m, err = r.awaitLoad(ctx, name, v); m != nil || err != nil {
			return m, err
		}
	}
	return nil, fmt.Errorf("%w: model %q was unloaded as soon as it loaded: the memory budget is too small for the load", ErrModelNotReady, name)
}

// pick finds the version a request names (0: the highest that is ready
// or can load on demand). It returns the model when ready, else the
// version when it can load on demand, else the error.
func (r *Repository) pick(name string, want int64) (*Model, *version, error) {
	versions, ok := r.models[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrModelNotFound, QuoteName(name))
	}
	onDemand := r.ctl.Mode == ControlOnDemand
	usable := func(v *version) bool {
		return v.model != nil && v.model.Unavailable() == "" || onDemand && v.unloaded
	}
	var num int64
	var v *version
	if want != 0 {
		if v, ok = versions[want]; !ok {
			return nil, nil, fmt.Errorf("%w: model %s has no version %d", ErrModelNotFound, QuoteName(name), want)
		}
		num = want
	} else {
		for n, c := range versions {
			if usable(c) && n > num {
				num, v = n, c
			}
		}
		if v == nil {
			return nil, nil, notReady(name, versions)
		}
	}
	switch {
	case v.model != nil && v.model.Unavailable() == "":
		return v.model, v, nil
	case onDemand && v.unloaded && v.failures > 0 && time.Now().Before(v.retryAt):
		return nil, nil, v.err // the last load's *LoadError
	case onDemand && v.unloaded:
		return nil, v, nil
	case v.model != nil:
		return nil, nil, fmt.Errorf("%w: model %q version %d: %s", ErrModelNotReady, name, num, v.model.Unavailable())
	}
	return nil, nil, fmt.Errorf("%w: model %q version %d: %v", ErrModelNotReady, name, num, v.err)
}

// awaitLoad waits for version v of model name to load, starting the load
// when none is in progress. It returns the model leased for ctx, or nil
// and nil when the version was unloaded again before the caller had it.
func (r *Repository) awaitLoad(ctx context.Context, name string, v *version) (*Model, error) {
	start := time.Now()
	r.mu.Lock()
	if !v.unloaded && v.loading == nil {
		r.mu.Unlock()
		return nil, nil // loaded or failed meanwhile: look again
	}
	done := v.loading
	if done == nil {
		done = make(chan struct{})
		v.loading = done
		r.ctl.wg.Add(1)
		go r.loadOnDemand(name, v, done)
	}
	v.waiters++
	r.mu.Unlock()

	wait := ctx
	if r.ctl.LoadWait > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, r.ctl.LoadWait)
		defer cancel()
	}
	select {
	case <-done:
	case <-wait.Done():
		r.mu.Lock()
		if v.loading == done {
			v.waiters--
			r.mu.Unlock()
		} else {
			r.mu.Unlock()
			<-done // ended meanwhile: its lease, if any, was given
			r.mu.RLock()
			if v.model != nil {
				r.release(v)
			}
			r.mu.RUnlock()
		}
		if ctx.Err() == nil {
			return nil, &LoadWaitError{Model: name, Waited: r.ctl.LoadWait}
		}
		return nil, fmt.Errorf("waiting for model %q to load: %w", name, ctx.Err())
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if v.model == nil {
		if v.unloaded && v.err != nil {
			return nil, v.err // no room: unloaded, and the error says why
		}
		if v.err != nil {
			return nil, fmt.Errorf("%w: %w", ErrModelNotReady, v.err)
		}
		return nil, nil
	}
	// The load gave this waiter a lease; tie it to ctx.
	if r.ctl.leasing && ctx.Done() != nil {
		context.AfterFunc(ctx, func() { r.release(v) })
	} else {
		r.release(v)
	}
	r.ctl.emit(ControlEvent{Model: name, Version: v.model.meta.Version, Kind: EventWait, Wait: time.Since(start)})
	return v.model, nil
}

// FormatBytes writes a byte count in binary units: 512 B, 3.2 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// keyString names a version in messages: name:version.
func keyString(name string, version int64) string {
	return name + ":" + strconv.FormatInt(version, 10)
}
