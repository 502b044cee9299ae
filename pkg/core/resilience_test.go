package core

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/runner"
)

// TestMain loads ONNX Runtime for the tests that serve real models.
func TestMain(m *testing.M) {
	runner.ServeHostIfChild()
	if _, err := runner.InitRuntime(""); err != nil {
		fmt.Fprintln(os.Stderr, "core tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Finding a model version's guard costs a request no allocation, with a
// breaker or without.
func TestGuardLookupAllocatesNothing(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"plain": {filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"), ""}, "guarded": {filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"), "circuit_breaker: {enabled: true}\n"}})
	s, err := New(repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); repo.Close() })
	for _, name := range []string{"plain", "guarded"} {
		m, err := repo.Model(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.guards.get(m)
		if n := testing.AllocsPerRun(100, func() { s.guards.get(m) }); n != 0 {
			t.Errorf("%s: %v allocations a lookup", name, n)
		}
	}
}
