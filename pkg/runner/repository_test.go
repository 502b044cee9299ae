package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, data)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A corrupt or missing model file fails with an error naming the file,
// and the other models load and serve.
func TestRepositoryKeepsServingPastBrokenModels(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "mlp", "1", ModelFile))
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "mlp", "3", ModelFile))
	writeFile(t, filepath.Join(dir, "corrupt", "1", ModelFile), []byte("this is not an ONNX model"))
	if err := os.MkdirAll(filepath.Join(dir, "missing", "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "misconfigured", ConfigFile), []byte("max_batch_sise: 8\n"))
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "misconfigured", "1", ModelFile))

	repo, err := Open(dir, LoadOptions{})
	if repo == nil {
		t.Fatalf("Open: %v", err)
	}
	defer repo.Close()
	for _, want := range []string{"corrupt/1/model.onnx", "missing", "2/model.onnx", "misconfigured/config.yaml", "max_batch_sise"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("load error %v: want it to name %q", err, want)
		}
	}

	m, err := repo.Model("mlp", 0)
	if err != nil {
		t.Fatalf("mlp should serve: %v", err)
	}
	if m.Metadata().Version != 3 {
		t.Fatalf("version 0 resolved to %d, want the highest ready version 3", m.Metadata().Version)
	}
	if _, err := m.Infer(context.Background(), &Request{Inputs: SyntheticInputs(m.Metadata().Inputs, 1, true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Model("corrupt", 1); !errors.Is(err, ErrModelNotReady) {
		t.Fatalf("corrupt model: err %v, want ErrModelNotReady", err)
	}
	if _, err := repo.Model("nope", 0); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("unknown model: err %v, want ErrModelNotFound", err)
	}
	if _, err := repo.Model("mlp", 2); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("unknown version: err %v, want ErrModelNotFound", err)
	}

	states := map[string]string{}
	for _, s := range repo.Index() {
		states[s.Name] = s.State
	}
	if states["mlp"] != StateReady || states["corrupt"] != StateUnavailable || states["missing"] != StateUnavailable || states["misconfigured"] != StateUnavailable {
		t.Fatalf("index states %v", states)
	}

	// A fixed model reloads in place; an unloaded one stops serving.
	writeFile(t, filepath.Join(dir, "misconfigured", ConfigFile), []byte("max_batch_size: 8\n"))
	if err := repo.Load("misconfigured"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if m, err := repo.Model("misconfigured", 1); err != nil || *m.Config().MaxBatchSize != 8 {
		t.Fatalf("reloaded model: %v", err)
	}
	if err := repo.Unload("mlp"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Model("mlp", 0); !errors.Is(err, ErrModelNotReady) {
		t.Fatalf("unloaded model: err %v, want ErrModelNotReady", err)
	}
}

func TestOpenSingleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "classifier.onnx")
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), path)
	repo, err := Open(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	m, err := repo.Model("classifier", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Metadata().Inputs[0]; got.Name != "image" || got.Shape[0] != -1 || got.Shape[1] != 784 {
		t.Fatalf("metadata read from the graph: %+v", got)
	}
	if _, err := Open(filepath.Join(dir, "nothing.onnx"), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "nothing.onnx") {
		t.Fatalf("missing file: err %v, want it named", err)
	}
}
