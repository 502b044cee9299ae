package runner

import (
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// LoadOptions tune LoadModel.
type LoadOptions struct {
	// Logger receives load and fallback messages; slog.Default() when nil.
	Logger *slog.Logger
	// ReadFile reads a file of the model's folder, such as a tokenizer's
	// vocabulary; the repository sets it.
	ReadFile func(name string) ([]byte, error)
	// ReadModel reads the version's model file again, for a model host
	// that starts again after a crash, so that the server keeps no copy
	// of the model's bytes while its hosts hold the sessions; the
	// repository sets it. Nil: the bytes LoadModel was given are kept.
	ReadModel func() ([]byte, error)
	// OpenModel opens the version's model file for a model host to read
	// itself (when it first starts and after a crash), so that the model's
	// bytes never pass through the server's memory; the repository sets it
	// where the repository is a directory. It takes precedence over
	// ReadModel.
	OpenModel func() (*os.File, error)
	// Device is the device of a model whose config names none ("cpu",
	// "cuda:N" or "tensorrt:N"; empty: cpu).
	Device string
	// Isolation is where the sessions of a model whose config names none
	// run: IsolationProcess or IsolationNone (empty: DefaultIsolation).
	Isolation string
	// LoadTimeout bounds a model host's load of its session
	// (DefaultLoadTimeout when 0).
	LoadTimeout time.Duration
	// StateDir is the server's state folder: monitored versions keep
	// their samples for review under it (empty: none kept).
	StateDir string
	// Control is a repository's model control (Open and OpenFS only).
	Control Control

	// modelSum is the SHA-256 of the model's bytes that every host of the
	// version must report: the first instance's host's, for the others.
	modelSum *[sha256.Size]byte
}

// DefaultIsolation is where sessions run unless configured otherwise.
const DefaultIsolation = IsolationProcess

// DefaultLoadTimeout bounds a model host's load of one session.
const DefaultLoadTimeout = 2 * time.Minute

// isolation returns where the sessions of a version configured with cfg
// run: its config's isolation, else the options', else DefaultIsolation.
func (o LoadOptions) isolation(cfg Config) string {
	switch {
	case cfg.Isolation != "":
		return cfg.Isolation
	case o.Isolation != "":
		return o.Isolation
	}
	return DefaultIsolation
}

func (o LoadOptions) loadTimeout() time.Duration {
	if o.LoadTimeout > 0 {
		return o.LoadTimeout
	}
	return DefaultLoadTimeout
}
