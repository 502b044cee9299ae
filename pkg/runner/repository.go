package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The files of a model repository: <name>/config.yaml and
// <name>/<version>/model.onnx, versions being positive integers.
const (
	ConfigFile = "config.yaml"
	ModelFile  = "model.onnx"
)

// Version states, as Triton's repository index reports them.
const (
	StateReady       = "READY"
	StateUnavailable = "UNAVAILABLE"
	// StateLoading is a version whose load is in progress (an on-demand
	// load a request started).
	StateLoading = "LOADING"
)

// Repository is a set of named models, each with one or more loaded
// versions, read from a model repository folder, a single .onnx file, or
// any fs.FS laid out as a repository (such as the bundled models).
type Repository struct {
	src  fs.FS
	desc string // where src lives, for messages
	// single is set when the repository is one .onnx file: the model's
	// name and the file's name within src.
	single, singleFile string
	opts               LoadOptions
	ctl                *control // model control: mode, budget, leases (control.go)

	mu     sync.RWMutex
	models map[string]map[int64]*version

	warned sync.Map // key → the text of its last warning (warnOnce)
}

type version struct {
	model  *Model // nil unless ready
	err    error  // why it is unavailable
	digest string // the loaded files' contentDigest, with model
	// failed is why the latest reload of this version failed while model,
	// an earlier load, kept serving; nil when it did not.
	failed error
	slot   // its file, use, size and loading (control.go)
}

// VersionStatus is one entry of the repository index.
type VersionStatus struct {
	Name    string
	Version int64
	State   string
	Reason  string
	// Isolation is where a loaded version's sessions run, and HostCrashes,
	// HostMemoryFaults and HostRestarts its model hosts' counts (see
	// Stats), also once the version gave up after too many crashes.
	Isolation                                   string
	HostCrashes, HostMemoryFaults, HostRestarts int64
	// Bytes is a loaded version's measured memory (see Control), LastUsed
	// its last request's start (zero: none), and OnDemand whether an
	// unloaded version loads at its next request.
	Bytes    int64
	LastUsed time.Time
	OnDemand bool
}

// Open reads a model repository folder, or a single .onnx file served as
// model <file name without .onnx>, version 1, with default configuration.
// Models that fail to load are reported in the returned error (each naming
// its file) while the others load and serve; the repository is returned
// whenever the path itself could be read.
func Open(p string, opts LoadOptions) (*Repository, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("open model repository: %w", err)
	}
	if !st.IsDir() {
		if !strings.HasSuffix(p, ".onnx") {
			return nil, fmt.Errorf("open %s: want a .onnx file or a model repository folder", p)
		}
		dir, file := filepath.Split(p)
		if dir == "" {
			dir = "."
		}
		r := &Repository{src: os.DirFS(dir), desc: dir, single: singleName(p), singleFile: file, opts: opts, models: map[string]map[int64]*version{}}
		r.ctl = newControl(opts.Control)
		return r, r.start([]string{r.single})
	}
	return OpenFS(os.DirFS(p), p, opts)
}

// OpenFS reads a model repository from fsys; desc says where it lives, for
// messages. As with Open, load failures are returned alongside the
// repository.
func OpenFS(fsys fs.FS, desc string, opts LoadOptions) (*Repository, error) {
	r := &Repository{src: fsys, desc: desc, opts: opts, models: map[string]map[int64]*version{}}
	r.ctl = newControl(opts.Control)
	names, err := r.List()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("open model repository %s: no models (want <name>/<version>/%s)", desc, ModelFile)
	}
	if versionFolders(fsys, names) {
		return nil, fmt.Errorf("open model repository %s: it is one model's folder (version folders %s, with %s): serve the repository that holds it, %s", desc, strings.Join(names, ", "), ModelFile, filepath.Dir(filepath.Clean(desc)))
	}
	for _, w := range opts.Control.Warm {
		if w == WarmAll {
			for _, n := range names {
				r.ctl.warm[n] = true
			}
			continue
		}
		if !slices.Contains(names, w) {
			return nil, fmt.Errorf("%w: %q, named to load at start, is not in the repository %s, which holds %s", ErrModelNotFound, w, desc, strings.Join(names, ", "))
		}
	}
	return r, r.start(names)
}

// List returns the names of the models in the repository's source,
// loaded or not.
func (r *Repository) List() ([]string, error) {
	if r.single != "" {
		return []string{r.single}, nil
	}
	entries, err := fs.ReadDir(r.src, ".")
	if err != nil {
		return nil, fmt.Errorf("read model repository %s: %w", r.desc, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := ValidModelName(e.Name()); err != nil {
			// Refused here, so that the name never reaches the index,
			// metrics or logs raw.
			r.warnOnce("folder "+e.Name(), "model folder skipped", "repository", r.desc, "err", err)
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// Load (re)reads model name from the source and loads every version found,
// beside the versions loaded before, and then swaps them in: a version
// whose new load fails keeps serving its earlier load (as Triton keeps a
// loaded version when its reload fails), the failure reported in the
// error and in the index (see keepServing).
func (r *Repository) Load(name string) error {
	if err := r.ctl.refuse("load of model " + name); err != nil {
		return err
	}
	loaded, err := r.read(name)
	if err != nil {
		// A model the source holds but cannot load is listed with its
		// reason; a name the source does not hold is not: the index stays
		// bounded by the repository, whatever names callers try.
		if !errors.Is(err, ErrModelNotFound) && !errors.Is(err, ErrInvalidInput) {
			r.mu.Lock()
			if _, ok := r.models[name]; !ok {
				r.models[name] = map[int64]*version{0: {err: err}}
			}
			r.mu.Unlock()
		}
		return err
	}
	r.mu.Lock()
	old := r.models[name]
	errs := keepServing(name, loaded, old)
	if r.ctl.Mode == ControlOnDemand {
		for _, v := range loaded {
			if v.model == nil && v.err != nil {
				v.loadFailed(name, v.err) // retried on demand, after the back-off
			}
		}
	}
	r.models[name] = loaded
	r.mu.Unlock()
	closeVersions(old)
	return errors.Join(errs...)
}

// keepServing moves into loaded each version of old that is ready where
// its new load failed, removing it from old (which the caller closes),
// and returns every version's load failure, those kept saying so.
func keepServing(name string, loaded, old map[int64]*version) []error {
	var errs []error
	for v, nv := range loaded {
		if nv.err == nil {
			continue
		}
		ov, ok := old[v]
		if !ok || ov.model == nil {
			errs = append(errs, nv.err)
			continue
		}
		loaded[v] = &version{model: ov.model, digest: ov.digest, failed: nv.err}
		delete(old, v)
		errs = append(errs, fmt.Errorf("%w; model %q version %d keeps serving its earlier load", nv.err, name, v))
	}
	return errs
}

// read loads every version of one model. A version that fails is kept,
// unavailable, with its error; a model whose folder or configuration
// cannot be read at all is an error.
func (r *Repository) read(name string) (map[int64]*version, error) {
	if err := ValidModelName(name); err != nil {
		return nil, err
	}
	if r.single != "" {
		if name != r.single {
			return nil, fmt.Errorf("%w: %q (this repository serves only %q)", ErrModelNotFound, name, r.single)
		}
		return map[int64]*version{1: r.loadVersion(name, 1, r.singleFile, Config{})}, nil
	}
	cfg, files, err := r.layout(name)
	if err != nil {
		return nil, err
	}
	versions := map[int64]*version{}
	for v, file := range files {
		versions[v] = r.loadVersion(name, v, file, cfg)
	}
	return versions, nil
}

// layout reads model name's configuration and finds its versions: each
// version's model file, relative to the model's folder.
func (r *Repository) layout(name string) (Config, map[int64]string, error) {
	cfg, err := r.readConfig(name)
	if err != nil {
		return Config{}, nil, err
	}
	entries, err := fs.ReadDir(r.src, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil, fmt.Errorf("%w: %q is not in %s", ErrModelNotFound, name, r.desc)
	}
	if err != nil {
		return Config{}, nil, fmt.Errorf("read model %q: %w", name, err)
	}
	if err := cfg.VersionPolicy.check(); err != nil {
		return Config{}, nil, fmt.Errorf("read %s: %w", r.where(path.Join(name, ConfigFile)), err)
	}
	files := map[int64]string{}
	var notVersions []string // folders named as numbers, but not versions
	for _, e := range entries {
		v, err := strconv.ParseInt(e.Name(), 10, 64)
		if !e.IsDir() || err != nil || v < 1 {
			if e.IsDir() && strings.Trim(e.Name(), "-+0123456789") == "" {
				notVersions = append(notVersions, e.Name())
			}
			continue // not a version folder
		}
		files[v] = path.Join(e.Name(), ModelFile)
	}
	if found := len(files); found > 0 {
		if files = cfg.VersionPolicy.choose(files); len(files) == 0 {
			return Config{}, nil, fmt.Errorf("model %q in %s: version_policy %s chooses none of its %d version folders", name, r.desc, cfg.VersionPolicy, found)
		}
	}
	if len(files) == 0 && cfg.composed() {
		files[1] = "" // a pipeline or router needs no version folder
	}
	if len(files) == 0 {
		if len(notVersions) > 0 {
			return Config{}, nil, fmt.Errorf("model %q in %s: no version folders: %s are not versions (a version is a whole number from 1 to %d)", name, r.desc, strings.Join(notVersions, ", "), int64(math.MaxInt64))
		}
		return Config{}, nil, fmt.Errorf("model %q in %s: no version folders (want %s/<version>/%s)", name, r.desc, name, ModelFile)
	}
	return cfg, files, nil
}

func (r *Repository) readConfig(name string) (Config, error) {
	file := path.Join(name, ConfigFile)
	err := r.regular(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	var f fs.File
	if err == nil {
		f, err = r.src.Open(file)
	}
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", r.where(file), err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", r.where(file), err)
	}
	return cfg, nil
}

// loadVersion loads one version; the file is relative to the model's
// folder (to the source's root for a single-file repository).
func (r *Repository) loadVersion(name string, v int64, file string, cfg Config) *version {
	out := &version{slot: slot{file: file, cfg: cfg, num: v}}
	if r.single == "" {
		file = path.Join(name, file)
	}
	out.stamp = r.stampOf(file)
	if cfg.composed() {
		m, err := r.loadComposite(name, v, cfg)
		if err != nil {
			out.err = fmt.Errorf("load model %q version %d from %s: %w", name, v, r.where(path.Join(name, ConfigFile)), err)
			return out
		}
		if m.labels, err = r.readLabels(name, cfg, m.Metadata().Outputs); err != nil {
			m.Close()
			out.err = fmt.Errorf("load model %q version %d: %w", name, v, err)
			return out
		}
		out.model = m
		out.digest = contentDigest(nil, cfg)
		out.lastUsed.Store(time.Now().UnixNano())
		return out
	}
	opts := r.opts
	if r.single == "" {
		opts.ReadFile = func(f string) ([]byte, error) { return r.ReadFile(name, f) }
	}
	// A model host reads the file itself where the repository is a
	// directory, or is given it read again (after a crash too): the
	// server keeps no copy of the weights its hosts hold.
	opts.ReadModel = func() ([]byte, error) { return r.readModel(file) }
	data, release, err := r.modelBytes(file, cfg, &opts)
	if err != nil {
		out.err = fmt.Errorf("load model %q version %d: %w", name, v, err)
		return out
	}
	defer release()
	m, bytes, err := r.loadMeasured(name, v, data, cfg, opts)
	if err != nil {
		out.err = fmt.Errorf("load model %q version %d from %s: %w", name, v, r.where(file), err)
		return out
	}
	if m.labels, err = r.readLabels(name, cfg, m.Metadata().Outputs); err != nil {
		m.Close()
		out.err = fmt.Errorf("load model %q version %d: %w", name, v, err)
		return out
	}
	out.model, out.digest = m, m.contentDigest(data, cfg)
	out.bytes.Store(bytes)
	out.lastUsed.Store(time.Now().UnixNano())
	return out
}

func (r *Repository) where(file string) string {
	if r.desc == "" {
		return file
	}
	return path.Join(filepath.ToSlash(r.desc), file)
}

// ReadFile reads a file that ships with model name, such as its
// vocabulary: <name>/<file> in a repository.
func (r *Repository) ReadFile(name, file string) ([]byte, error) {
	if r.single != "" {
		return nil, fmt.Errorf("model %q: a single-file model has no %s", name, file)
	}
	if err := r.regular(path.Join(name, file)); err != nil {
		return nil, err
	}
	return fs.ReadFile(r.src, path.Join(name, file))
}

// Unload closes every version of model name; queued requests are answered
// first. The model stays in the index as unavailable.
func (r *Repository) Unload(name string) error {
	if err := r.ctl.refuse("unload of model " + name); err != nil {
		return err
	}
	if r.ctl.Mode == ControlOnDemand {
		return r.unloadKeeping(name)
	}
	r.mu.Lock()
	old, ok := r.models[name]
	if ok {
		// Each version stays in the index, unavailable, under its own
		// number, as Triton lists an unloaded model's versions.
		unloaded := make(map[int64]*version, len(old))
		for num := range old {
			if num > 0 {
				unloaded[num] = &version{err: fmt.Errorf("model %q version %d is unloaded", name, num)}
			}
		}
		if len(unloaded) == 0 { // a model that never had a version loaded
			unloaded[0] = &version{err: fmt.Errorf("model %q is unloaded", name)}
		}
		r.models[name] = unloaded
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrModelNotFound, QuoteName(name))
	}
	var ds []detached
	for num, v := range old {
		if v.model != nil {
			ds = append(ds, detached{name, num, v.bytes.Load(), v.model})
		}
	}
	r.closeDetached(ds, ReasonAdmin)
	return nil
}

// Model returns a ready version of model name: the given version, or the
// highest ready version when version is 0.
func (r *Repository) Model(name string, version int64) (*Model, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	versions, ok := r.models[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrModelNotFound, QuoteName(name))
	}
	if version != 0 {
		v, ok := versions[version]
		if !ok {
			return nil, fmt.Errorf("%w: model %s has no version %d", ErrModelNotFound, QuoteName(name), version)
		}
		if v.model == nil {
			return nil, fmt.Errorf("%w: model %q version %d: %v", ErrModelNotReady, name, version, v.err)
		}
		if reason := v.model.Unavailable(); reason != "" {
			return nil, fmt.Errorf("%w: model %q version %d: %s", ErrModelNotReady, name, version, reason)
		}
		return v.model, nil
	}
	var best *Model
	for _, v := range versions {
		if v.model != nil && v.model.Unavailable() == "" && (best == nil || v.model.meta.Version > best.meta.Version) {
			best = v.model
		}
	}
	if best == nil {
		return nil, notReady(name, versions)
	}
	return best, nil
}

// notReady is the error of model name when none of its versions is
// ready: with the newest version's reason, where one has a reason.
func notReady(name string, versions map[int64]*version) error {
	var num int64
	var why string
	for n, v := range versions {
		if n < num {
			continue
		}
		switch {
		case v.model != nil && v.model.Unavailable() != "":
			num, why = n, v.model.Unavailable()
		case v.model == nil && v.err != nil:
			num, why = n, v.err.Error()
		}
	}
	if why == "" {
		return fmt.Errorf("%w: model %q has no ready version", ErrModelNotReady, name)
	}
	return fmt.Errorf("%w: model %q has no ready version (version %d: %s)", ErrModelNotReady, name, num, why)
}

// Index returns every model version the repository knows, ready or not,
// sorted by name and version.
func (r *Repository) Index() []VersionStatus {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []VersionStatus
	for name, versions := range r.models {
		for v, st := range versions {
			s := VersionStatus{Name: name, Version: v, State: StateReady, OnDemand: st.unloaded && r.ctl.Mode == ControlOnDemand}
			if t := st.lastUsed.Load(); t != 0 {
				s.LastUsed = time.Unix(0, t)
			}
			if st.model == nil {
				s.State, s.Reason = StateUnavailable, st.err.Error()
				if st.loading != nil {
					s.State, s.Reason = StateLoading, "loading on request"
				}
			} else {
				s.Isolation, s.Bytes = st.model.isolation, st.bytes.Load()
				s.HostCrashes, s.HostMemoryFaults, s.HostRestarts = st.model.hosts.counts()
				if reason := st.model.Unavailable(); reason != "" {
					s.State, s.Reason = StateUnavailable, reason
				} else if st.failed != nil {
					s.Reason = "serving its earlier load; the latest reload failed: " + st.failed.Error()
				}
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b VersionStatus) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
	return out
}

// Close unloads every model, answering queued requests first.
func (r *Repository) Close() { r.CloseWithin(closeGrace) }

// CloseWithin is Close, all versions at once, each giving the batches
// running in its hosts at most grace before it kills them: a server's
// shutdown bounds it by what is left of its grace period.
func (r *Repository) CloseWithin(grace time.Duration) {
	r.ctl.halt()
	r.mu.Lock()
	models := r.models
	r.models = map[string]map[int64]*version{}
	r.mu.Unlock()
	var closing sync.WaitGroup
	for _, versions := range models {
		for _, v := range versions {
			if v.model != nil {
				closing.Go(func() { v.model.closeWithin(max(grace, 0)) })
			}
		}
	}
	closing.Wait()
}

func closeVersions(versions map[int64]*version) {
	for _, v := range versions {
		if v.model != nil {
			v.model.Close()
		}
	}
}
