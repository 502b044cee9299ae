package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Composite is a model version that runs no graph of its own but other
// served models and code: a pipeline of steps, or a router that picks a
// model by the request's inputs. It is served like any version (the same
// metadata, statistics, metrics and front ends); the models it calls are
// run through their own admission, batcher and runner.
type Composite interface {
	// Metadata returns the version's interface as clients see it; the
	// repository fills in its name and version.
	Metadata() Metadata
	// Infer answers one request. Its errors wrap ErrInvalidInput for the
	// client's mistakes, as the runner's do.
	Infer(ctx context.Context, req *Request) (*Response, error)
	// Close releases what the composite holds; the models it calls are
	// the repository's and stay loaded.
	Close()
}

// CompositeSpec is what a Composer builds a composite from.
type CompositeSpec struct {
	Name    string
	Version int64
	// Config is the model's configuration; its Pipeline or Router block
	// (a YAML node) is the composer's to read.
	Config Config
	// Models is the repository the composite calls models of.
	Models *Repository
	// ReadFile reads a file of the model's folder (a vocabulary, labels).
	ReadFile func(name string) ([]byte, error)
	Logger   *slog.Logger
}

// A Composer builds the composite that a model's config.yaml declares.
type Composer func(CompositeSpec) (Composite, error)

var composer atomic.Pointer[Composer]

// RegisterComposer sets the composer of the models whose config.yaml
// declares a pipeline or router block instead of a model file (package
// pipeline registers itself when imported).
func RegisterComposer(c Composer) { composer.Store(&c) }

// Composite returns the composite the version runs, or nil for a graph.
func (m *Model) Composite() Composite { return m.composite }

// composed reports whether cfg declares a composite rather than a graph.
func (c Config) composed() bool { return c.Pipeline != nil || c.Router != nil }

// isComposite reports whether model name's config.yaml declares a
// composite; an unreadable config is reported as not one (its load says
// why).
func (r *Repository) isComposite(name string) bool {
	if r.single != "" {
		return false
	}
	cfg, err := r.readConfig(name)
	return err == nil && cfg.composed()
}

// loadComposite loads version v of a composite model.
func (r *Repository) loadComposite(name string, v int64, cfg Config) (*Model, error) {
	mk := composer.Load()
	if mk == nil {
		return nil, errors.New("config declares a pipeline or router, and this program serves neither")
	}
	if cfg.Pipeline != nil && cfg.Router != nil {
		return nil, errors.New("config: pipeline and router are exclusive: declare one")
	}
	log := r.opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("model", name, "version", v)
	start := time.Now()
	cfg = cfg.withDefaults(false)
	cfg.Isolation = IsolationNone // a composite runs no session of its own
	c, err := (*mk)(CompositeSpec{
		Name: name, Version: v, Config: cfg, Models: r, Logger: log,
		ReadFile: func(f string) ([]byte, error) { return r.ReadFile(name, f) },
	})
	if err != nil {
		return nil, err
	}
	meta := c.Metadata()
	meta.Name, meta.Version = name, v
	m := &Model{
		meta: meta, served: meta, cfg: cfg, composite: c,
		batcher:   newBatcher(cfg),
		isolation: IsolationNone,
		hosts:     &hostHealth{limit: DefaultCrashLimit, window: DefaultCrashWindow},
		closing:   make(chan struct{}),
		inputIdx:  indexByName(meta.Inputs),
		outputIdx: indexByName(meta.Outputs),
		log:       log,
	}
	m.stats.batchSizes = make([]atomic.Int64, 1)
	m.loadDuration = time.Since(start)
	log.Info("composite model loaded", "platform", meta.Platform, "load", m.loadDuration)
	return m, nil
}

// serveComposite answers req through the version's composite and counts
// it as a version's own request: a success or failure, its time from
// submission to answer, and one execution.
func (m *Model) serveComposite(ctx context.Context, req *Request) (*Response, error) {
	start := time.Now()
	resp, err := m.composite.Infer(ctx, req)
	end := time.Now()
	m.stats.executions.Add(1)
	m.stats.executionNanos.Add(int64(end.Sub(start)))
	m.stats.lastInference.Store(end.UnixNano())
	if err != nil {
		m.stats.failure.Add(1)
		return nil, err
	}
	m.stats.success.Add(1)
	m.stats.successNanos.Add(int64(end.Sub(start)))
	resp.ModelName, resp.ModelVersion, resp.ID = m.meta.Name, m.meta.Version, req.ID
	return resp, nil
}
