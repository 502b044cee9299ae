package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
)

// BaselineFile is the file of a model's folder that holds the reference
// distribution its versions' quality monitors compare with (a
// drift.Summary as JSON, as `infer monitor baseline` writes it).
const BaselineFile = "baseline.json"

// MonitorConfig is a model's quality monitoring, config.yaml's monitor
// block: statistics of a sampled fraction of requests, compared window by
// window with a baseline, and samples kept for review.
type MonitorConfig struct {
	// Sample is the fraction of requests observed, in [0, 1]; 0 (the
	// default) turns monitoring off.
	Sample float64 `yaml:"sample"`
	// Window is how long each window of statistics runs (1m); Keep how
	// many closed windows are kept (30).
	Window Duration `yaml:"window,omitempty"`
	Keep   int      `yaml:"keep,omitempty"`
	// MaxFeatures is the widest row followed position by position (32);
	// wider ones are summarised by norm and mean. MaxCategories bounds the
	// values counted per categorical feature (64).
	MaxFeatures   int `yaml:"max_features,omitempty"`
	MaxCategories int `yaml:"max_categories,omitempty"`
	// Queue bounds the samples waiting for the monitor's worker (256).
	Queue int `yaml:"queue,omitempty"`
	// Alpha is the false-alarm rate per tensor per window (0.001);
	// MinSamples the fewest values a feature needs to alarm (100).
	Alpha      float64 `yaml:"alpha,omitempty"`
	MinSamples int64   `yaml:"min_samples,omitempty"`
	// Samples keeps request/response pairs for review under the server's
	// state folder.
	Samples ReviewConfig `yaml:"samples,omitempty"`
}

// ReviewConfig says which samples are kept for review and how inputs are
// redacted.
type ReviewConfig struct {
	// PerWindow is how many pairs each window keeps, a uniform sample of
	// the window's sampled requests (100); 0 with Off keeps none.
	PerWindow int  `yaml:"per_window,omitempty"`
	Off       bool `yaml:"off,omitempty"`
	// Files is how many window files are kept (48).
	Files int `yaml:"files,omitempty"`
	// Drop names inputs never written; Hash names inputs written as the
	// SHA-256 of their bytes.
	Drop []string `yaml:"drop,omitempty"`
	Hash []string `yaml:"hash,omitempty"`
}

// validateMonitor checks the monitor block against the model's inputs.
func (c MonitorConfig) validate(meta Metadata) error {
	var errs []error
	if !(c.Sample >= 0 && c.Sample <= 1) {
		errs = append(errs, fmt.Errorf("monitor.sample: %v, want a fraction in [0, 1] (0: off)", c.Sample))
	}
	if c.Window < 0 || c.Keep < 0 || c.MaxFeatures < 0 || c.MaxCategories < 0 || c.Queue < 0 || c.MinSamples < 0 || c.Samples.PerWindow < 0 || c.Samples.Files < 0 {
		errs = append(errs, errors.New("monitor: window, keep, max_features, max_categories, queue, min_samples, samples.per_window and samples.files must not be negative"))
	}
	// Bounds on what sizes memory (a queue allocated up front, windows,
	// features and categories kept per window, samples kept): far past
	// any use, short of a number that ends the process.
	for _, b := range []struct {
		field       string
		value, most int
	}{
		{"monitor.queue", c.Queue, 1 << 16},
		{"monitor.keep", c.Keep, 10_000},
		{"monitor.max_features", c.MaxFeatures, 4096},
		{"monitor.max_categories", c.MaxCategories, 4096},
		{"monitor.samples.per_window", c.Samples.PerWindow, 100_000},
		{"monitor.samples.files", c.Samples.Files, 10_000},
	} {
		if b.value > b.most {
			errs = append(errs, fmt.Errorf("%s: %d, want at most %d", b.field, b.value, b.most))
		}
	}
	if !(c.Alpha >= 0 && c.Alpha < 1) {
		errs = append(errs, fmt.Errorf("monitor.alpha: %v, want a probability in (0, 1)", c.Alpha))
	}
	for _, names := range []struct {
		field string
		list  []string
	}{{"monitor.samples.drop", c.Samples.Drop}, {"monitor.samples.hash", c.Samples.Hash}} {
		for _, n := range names.list {
			if _, ok := indexByName(meta.Inputs)[n]; !ok {
				errs = append(errs, fmt.Errorf("%s: the model has no input %q", names.field, n))
			}
		}
	}
	return errors.Join(errs...)
}

// startMonitor starts m's quality monitor when its config asks for one,
// with the baseline of the model's folder when there is one.
func (m *Model) startMonitor(opts LoadOptions) error {
	c := m.cfg.Monitor
	if c.Sample == 0 {
		return nil
	}
	if err := c.validate(m.served); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	o := drift.Options{
		Model: m.meta.Name, Version: m.meta.Version, Sample: c.Sample,
		Window: time.Duration(c.Window), Keep: c.Keep, Queue: c.Queue,
		Layout:  drift.Layout{Batched: m.stacked, MaxFeatures: c.MaxFeatures, MaxCategories: c.MaxCategories},
		Compare: drift.CompareOptions{Alpha: c.Alpha, MinSamples: c.MinSamples},
		Logger:  m.log,
	}
	if opts.StateDir != "" && !c.Samples.Off {
		o.Samples = drift.SampleOptions{Dir: drift.SampleDir(opts.StateDir, m.meta.Name, m.meta.Version),
			PerWindow: c.Samples.PerWindow, Files: c.Samples.Files, Drop: c.Samples.Drop, Hash: c.Samples.Hash}
	}
	if opts.ReadFile != nil {
		data, err := opts.ReadFile(BaselineFile)
		switch {
		case err == nil:
			b, err := drift.ParseSummary(data)
			if err != nil {
				return fmt.Errorf("%s: %w", BaselineFile, err)
			}
			o.Baseline = &b
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s: %w", BaselineFile, err)
		}
	}
	mon, err := drift.New(o)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	m.quality = mon
	return nil
}

// Quality returns the version's quality monitor, or nil when its config
// samples no requests.
func (m *Model) Quality() *drift.Monitor { return m.quality }
