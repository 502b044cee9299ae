// Package testrepo writes model repositories for tests: model folders of
// given ONNX files and config.yaml texts, in a test's temporary folder.
package testrepo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// Open writes a model repository: each model name maps to its ONNX
// file and config.yaml; "name/2" keys add further versions.
func Open(t *testing.T, models map[string][2]string) *runner.Repository {
	t.Helper()
	repo, err := runner.Open(Dir(t, models), runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// Dir writes the repository Open opens, and returns its folder.
func Dir(t *testing.T, models map[string][2]string) string {
	t.Helper()
	dir := t.TempDir()
	for key, m := range models {
		name, version, ok := strings.Cut(key, "/")
		if !ok {
			version = "1"
		}
		data, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, name, version), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, version, "model.onnx"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if m[1] != "" {
			if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(m[1]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
