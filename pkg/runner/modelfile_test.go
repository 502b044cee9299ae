package runner

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A repository's model file that hosts will read is mapped, not read,
// for its interface; one cut shorter while mapped fails its load with an
// error, where touching the lost pages would otherwise end the server
// (SIGBUS).
func TestMappedModelCutShorterFailsTheLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mlp", "1", ModelFile)
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), file)
	r := &Repository{src: os.DirFS(dir), opts: LoadOptions{Isolation: IsolationProcess}}
	opts := r.opts
	data, release, err := r.modelBytes("mlp/1/model.onnx", Config{}, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if opts.OpenModel == nil {
		t.Fatal("a directory's model file is not given to its hosts to open")
	}
	if _, err := os.Stat(file); err != nil || len(data) == 0 {
		t.Fatalf("mapped %d bytes: %v", len(data), err)
	}
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel("mlp", 1, data, Config{}, opts)
	if err == nil {
		m.Close()
		t.Fatal("a model whose file was cut to nothing while mapped loaded")
	}
	if !strings.Contains(err.Error(), "the model file changed while it loaded") {
		t.Fatalf("load of a cut file: %v, want the fault as its error", err)
	}
}

// In process, or from a repository that is no directory, the model's
// bytes are read as they are: the server's own session, or the host's
// region, needs all of them.
func TestModelBytesAreReadWhereTheServerNeedsThem(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "mlp", "1", ModelFile))
	r := &Repository{src: os.DirFS(dir), opts: LoadOptions{Isolation: IsolationNone}}
	opts := r.opts
	data, release, err := r.modelBytes("mlp/1/model.onnx", Config{}, &opts)
	if err != nil {
		t.Fatal(err)
	}
	release()
	data[0] ^= 1 // a heap copy: writable, and still there after release
	if _, err := os.ReadFile(filepath.Join(dir, "mlp", "1", ModelFile)); err != nil {
		t.Fatal(err)
	}
}

// A model file or config.yaml that is a named pipe is refused, by name,
// where opening it would wait for a writer for ever (and hold the
// server's shutdown); a device is refused too.
func TestNonRegularModelFilesAreRefused(t *testing.T) {
	cases := map[string]func(dir string) error{
		"a named pipe": func(dir string) error {
			return syscall.Mkfifo(filepath.Join(dir, "m", "1", ModelFile), 0o644)
		},
		"a device": func(dir string) error {
			return os.Symlink("/dev/zero", filepath.Join(dir, "m", "1", ModelFile))
		},
		"a named pipe for config.yaml": func(dir string) error {
			copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "m", "1", ModelFile))
			return syscall.Mkfifo(filepath.Join(dir, "m", ConfigFile), 0o644)
		},
	}
	for what, build := range cases {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "m", "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := build(dir); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			repo, err := Open(dir, LoadOptions{Isolation: IsolationProcess})
			if err == nil {
				repo.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s: %v, want it refused as not a regular file", what, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: Open still waits after a minute", what)
		}
	}
}
