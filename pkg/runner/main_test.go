package runner

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// bundled is the repository of the bundled models, relative to this package.
var bundled = filepath.Join("..", "..", "testdata", "models")

func TestMain(m *testing.M) {
	ServeHostIfChild()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if _, err := InitRuntime(""); err != nil {
		fmt.Fprintln(os.Stderr, "runner tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m) // no goroutine outlives its owner
}

// loadBundled loads one bundled model's version 1 with cfg.
func loadBundled(t testing.TB, name string, cfg Config) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundled, name, "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(name, 1, data, cfg, LoadOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(m.Close)
	return m
}

func intp(n int) *int { return &n }
