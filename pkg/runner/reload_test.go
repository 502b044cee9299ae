package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A reload from a truncated model file fails, naming the file, and the
// version loaded before keeps answering, its digest unchanged, the index
// saying READY with the failure as its reason. A good file reloaded later
// replaces it and clears the reason.
func TestFailedReloadKeepsTheServingVersion(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mlp", "1", ModelFile)
	writeFile(t, file, good)
	repo, err := Open(dir, LoadOptions{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	before, err := repo.Digest("mlp", 1)
	if err != nil || !strings.HasPrefix(before, "sha256:") {
		t.Fatalf("digest %q %v", before, err)
	}

	writeFile(t, file, good[:len(good)/2])
	err = repo.Load("mlp")
	if err == nil || !strings.Contains(err.Error(), "mlp/1/model.onnx") || !strings.Contains(err.Error(), "keeps serving its earlier load") {
		t.Fatalf("reload of a truncated file: %v", err)
	}
	m, err := repo.Model("mlp", 1)
	if err != nil {
		t.Fatalf("version 1 stopped serving after a failed reload: %v", err)
	}
	if _, err := m.Infer(context.Background(), &Request{Inputs: SyntheticInputs(m.Metadata().Inputs, 1, true)}); err != nil {
		t.Fatalf("the kept version does not answer: %v", err)
	}
	if d, _ := repo.Digest("mlp", 1); d != before {
		t.Fatalf("digest %s after a failed reload, want the serving one %s", d, before)
	}
	idx := repo.Index()
	if len(idx) != 1 || idx[0].State != StateReady || !strings.Contains(idx[0].Reason, "latest reload failed") {
		t.Fatalf("index %+v", idx)
	}

	// A changed configuration is another revision of the same model file.
	writeFile(t, file, good)
	writeFile(t, filepath.Join(dir, "mlp", ConfigFile), []byte("max_batch_size: 4\n"))
	if err := repo.Load("mlp"); err != nil {
		t.Fatal(err)
	}
	after, _ := repo.Digest("mlp", 1)
	if after == before {
		t.Fatal("a changed config.yaml kept the digest")
	}
	if idx := repo.Index(); idx[0].Reason != "" {
		t.Fatalf("reason %q after a good reload", idx[0].Reason)
	}
	if err := repo.Load("mlp"); err != nil {
		t.Fatal(err)
	}
	if again, _ := repo.Digest("mlp", 1); again != after {
		t.Fatalf("the same files gave digest %s, then %s", after, again)
	}
}

// Model names outside the safe set are refused at the scan, with the
// reason, and never reach the index.
func TestUnsafeModelNamesAreRefused(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(bundled, "mlp", "1", ModelFile)
	copyFile(t, good, filepath.Join(dir, "mlp", "1", ModelFile))
	if err := os.MkdirAll(filepath.Join(dir, "bad\xffname", "1"), 0o755); err != nil {
		t.Skipf("this file system refuses a name that is not UTF-8: %v", err)
	}
	copyFile(t, good, filepath.Join(dir, "bad\xffname", "1", ModelFile))
	repo, err := Open(dir, LoadOptions{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	for _, st := range repo.Index() {
		if st.Name != "mlp" {
			t.Fatalf("index holds %q", st.Name)
		}
	}
	for name, want := range map[string]string{
		"bad\xffname":                          `holds byte 0xff at byte 3`,
		"":                                     "empty",
		"..":                                   "starts with '.'",
		"a/b":                                  `holds '/'`,
		"a b":                                  `holds ' '`,
		strings.Repeat("m", MaxModelNameLen+1): "at most 128",
	} {
		err := repo.Load(name)
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "model name") {
			t.Errorf("load %q: %v, want %q", name, err, want)
		}
	}
	for _, ok := range []string{"mlp", "resnet-50_v1.5", "A1"} {
		if err := ValidModelName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
