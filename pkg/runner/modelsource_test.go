package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A version loaded from a repository keeps no copy of its model's bytes:
// a host that crashed starts again from the file, read again and checked
// against what was loaded; when the file has changed meanwhile, the host
// does not start on the other model, and the version goes unavailable
// saying so.
func TestHostRestartsFromTheFileAndRefusesAChangedOne(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "int-div", "1", ModelFile)
	copyFile(t, filepath.Join(faults, "int-div.onnx"), file)
	_, m := openHosted(t, dir, "int-div")
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); !ok || h.model.kept != nil || h.model.reread == nil {
			t.Fatalf("instance %T keeps the model's bytes in the server", in)
		}
	}

	_, err := divide(m, healthyA, poisonB)
	wantHostDied(t, err, "SIGFPE")
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err) // a host started again from the file

	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), file)
	_, err = divide(m, healthyA, poisonB)
	wantHostDied(t, err, "SIGFPE")
	_, err = divide(m, healthyA, healthyB)
	if !errors.Is(err, ErrModelNotReady) || !strings.Contains(err.Error(), "model file changed since this version loaded") {
		t.Fatalf("after the file changed under a crashed host: %v, want ErrModelNotReady saying the file changed", err)
	}
}

// openHosted opens the repository dir with every model in model hosts,
// closed when the test ends, and returns it with model name's latest
// version.
func openHosted(t *testing.T, dir, name string) (*Repository, *Model) {
	t.Helper()
	repo, err := Open(dir, LoadOptions{Isolation: IsolationProcess})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	m, err := repo.Model(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return repo, m
}

// A model loaded from bytes alone (no file to read again) keeps them for
// its hosts' restarts.
func TestModelSourceKeepsBytesWithoutAFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(faults, "int-div.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s := newModelSource(data, nil, nil)
	if b, err := s.bytes(); err != nil || len(b) != len(data) {
		t.Fatalf("kept bytes: %d, %v", len(b), err)
	}
	if _, err := (modelSource{}).bytes(); !errors.Is(err, ErrClosed) {
		t.Errorf("a closed host's source: %v, want ErrClosed", err)
	}
	failing := newModelSource(data, func() ([]byte, error) { return nil, os.ErrNotExist }, nil)
	if _, err := failing.bytes(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read the model again") {
		t.Errorf("a file gone: %v, want its error, wrapped", err)
	}
}
