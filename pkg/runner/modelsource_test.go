package runner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// A version loaded from a repository keeps no copy of its model's bytes:
// its host reads the file itself, and one that crashed starts again from
// the file, checked against what was loaded; when the file has changed
// meanwhile, the host does not start on the other model, and the version
// goes unavailable saying so. The content digest is the host's hash of
// the file, the same as hashing it here.
func TestHostRestartsFromTheFileAndRefusesAChangedOne(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "int-div", "1", ModelFile)
	copyFile(t, filepath.Join(faults, "int-div.onnx"), file)
	repo, m := openHosted(t, dir, "int-div")
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); !ok || h.model.kept != nil || h.model.open == nil {
			t.Fatalf("instance %T keeps the model's bytes in the server", in)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := contentDigest(data, repo.models["int-div"][1].cfg)
	if got, err := repo.Digest("int-div", 1); err != nil || got != want {
		t.Fatalf("digest %q, %v; hashed here: %q", got, err, want)
	}

	_, err = divide(m, healthyA, poisonB)
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
	// The version gave up at the first refused restart, and a request for
	// the model says why.
	if crashes, _, _ := m.hosts.counts(); crashes != 3 {
		t.Errorf("%d crashes, want 3 (two poison batches, one refused restart): a changed file is not tried again", crashes)
	}
	if _, err := repo.Model("int-div", 0); err == nil || !strings.Contains(err.Error(), "model file changed since this version loaded") {
		t.Errorf("the model after its version gave up: %v, want the reason", err)
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
	s := newModelSource(data, nil, nil, nil)
	if b, err := s.bytes(); err != nil || len(b) != len(data) {
		t.Fatalf("kept bytes: %d, %v", len(b), err)
	}
	if _, err := (modelSource{}).bytes(); !errors.Is(err, ErrClosed) {
		t.Errorf("a closed host's source: %v, want ErrClosed", err)
	}
	failing := newModelSource(data, func() ([]byte, error) { return nil, os.ErrNotExist }, nil, nil)
	if _, err := failing.bytes(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read the model again") {
		t.Errorf("a file gone: %v, want its error, wrapped", err)
	}
}

// A repository that is no directory (an embedded one) gives its hosts the
// model's bytes in their region, read again for a restart; a file changed
// to other bytes of the same size is refused by the hash its host reports.
func TestHostRestartFromAnFSRefusesOtherBytesOfTheSameSize(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(faults, "int-div.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	file := &fstest.MapFile{Data: data}
	repo, err := OpenFS(fstest.MapFS{"int-div/1/model.onnx": file}, "embedded", LoadOptions{Isolation: IsolationProcess})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	m, err := repo.Model("int-div", 0)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := m.instances[0].(*hostedInstance); !ok || h.model.open != nil || h.model.reread == nil {
		t.Fatalf("instance %T: want the bytes read again, no file to open", m.instances[0])
	}
	if got, _ := repo.Digest("int-div", 1); got != contentDigest(data, repo.models["int-div"][1].cfg) {
		t.Fatalf("digest %q differs from hashing the bytes here", got)
	}
	_, err = divide(m, healthyA, poisonB)
	wantHostDied(t, err, "SIGFPE")
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err) // started again from the bytes read again

	// The same size, one byte of the producer's name changed: a model that
	// still loads, but not the one this version loaded.
	other := bytes.Clone(data)
	i := bytes.Index(other, []byte("infer"))
	if i < 0 {
		t.Fatal("no producer name in the test model")
	}
	other[i] = 'I'
	file.Data = other
	_, err = divide(m, healthyA, poisonB)
	wantHostDied(t, err, "SIGFPE")
	_, err = divide(m, healthyA, healthyB)
	if !errors.Is(err, ErrModelNotReady) || !strings.Contains(err.Error(), "other bytes of the same size") {
		t.Fatalf("after the bytes changed under a crashed host: %v, want ErrModelNotReady saying the file changed", err)
	}
}
