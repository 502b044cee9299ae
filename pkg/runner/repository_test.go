package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// A model.onnx in a repository's layout is served under its model's
// name (it was "model"), and a model's folder given where a repository
// was meant is refused, naming the repository to serve (it loaded each
// version folder as a model of no versions, and served nothing).
func TestOpenNamesWhatWasMeant(t *testing.T) {
	repo, err := Open(filepath.Join(bundled, "mlp", "1", ModelFile), LoadOptions{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if _, err := repo.Model("mlp", 1); err != nil {
		t.Fatalf("mlp/1/model.onnx not served as mlp: %v", err)
	}
	_, err = Open(filepath.Join(bundled, "mlp"), LoadOptions{})
	if want := "it is one model's folder (version folders 1, with model.onnx): serve the repository that holds it, " + bundled; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a model's folder as the repository: %v, want %q", err, want)
	}
}

// Folders named as numbers that are no versions are named as such, where
// the model was said to have no version folders at all.
func TestFoldersThatAreNoVersionsAreNamed(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"0", "-1", "99999999999999999999"} {
		copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "m", v, ModelFile))
	}
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "ok", "1", ModelFile))
	repo, err := Open(dir, LoadOptions{Isolation: IsolationNone})
	if repo != nil {
		defer repo.Close()
	}
	if want := `model "m" in ` + dir + ": no version folders: -1, 0, 99999999999999999999 are not versions (a version is a whole number from 1 to 9223372036854775807)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
}

// version_policy chooses the version folders loaded, as Triton's does:
// the latest N, those named, or all (unset: all); a policy that names
// what is wrong, or chooses none of the folders, leaves the model
// UNAVAILABLE with the reason.
func TestVersionPolicyChoosesTheVersionsLoaded(t *testing.T) {
	dir := t.TempDir()
	policies := map[string]string{
		"latest2":  "version_policy: {latest: {num_versions: 2}}",
		"specific": "version_policy: {specific: {versions: [1, 3]}}",
		"all":      "version_policy: {all: {}}",
		"unset":    "",
		"zero":     "version_policy: {latest: {num_versions: 0}}",
		"two":      "version_policy: {latest: {num_versions: 1}, all: {}}",
		"none":     "version_policy: {specific: {versions: [9]}}",
	}
	for name, policy := range policies {
		for _, v := range []string{"1", "2", "3"} {
			copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, name, v, ModelFile))
		}
		writeFile(t, filepath.Join(dir, name, ConfigFile), []byte("isolation: none\n"+policy+"\n"))
	}
	repo, err := Open(dir, LoadOptions{})
	if repo == nil {
		t.Fatalf("Open: %v", err)
	}
	defer repo.Close()
	loaded := map[string][]int64{}
	reasons := map[string]string{}
	for _, s := range repo.Index() {
		if s.State == StateReady {
			loaded[s.Name] = append(loaded[s.Name], s.Version)
		} else {
			reasons[s.Name] = s.Reason
		}
	}
	for name, want := range map[string][]int64{"latest2": {2, 3}, "specific": {1, 3}, "all": {1, 2, 3}, "unset": {1, 2, 3}} {
		got := slices.Sorted(slices.Values(loaded[name]))
		if !slices.Equal(got, want) {
			t.Errorf("%s (%q): loaded %v, want %v", name, policies[name], got, want)
		}
	}
	for name, want := range map[string]string{
		"zero": "version_policy.latest.num_versions: 0", "two": "set one of latest, specific and all", "none": "chooses none of its 3 version folders",
	} {
		if len(loaded[name]) != 0 || !strings.Contains(reasons[name]+fmt.Sprint(err), want) {
			t.Errorf("%s: loaded %v, reason %q; want none loaded and the reason to name %q", name, loaded[name], reasons[name], want)
		}
	}
}
