package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// VersionFolders returns the versions model name's folder holds in the
// source now, loaded or not, ascending, without loading anything: what a
// load would pick up. A single-file repository holds version 1 of its one
// model. It fails with ErrModelNotFound for a name the source does not
// hold, and ErrInvalidInput for a name outside ValidModelName's set.
func (r *Repository) VersionFolders(name string) ([]int64, error) {
	if err := ValidModelName(name); err != nil {
		return nil, err
	}
	if r.single != "" {
		if name != r.single {
			return nil, fmt.Errorf("%w: %q (this repository serves only %q)", ErrModelNotFound, name, r.single)
		}
		return []int64{1}, nil
	}
	entries, err := fs.ReadDir(r.src, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q is not in %s", ErrModelNotFound, name, r.desc)
	}
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", name, err)
	}
	var out []int64
	for _, e := range entries {
		if v, err := strconv.ParseInt(e.Name(), 10, 64); e.IsDir() && err == nil && v >= 1 {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

// singleName names the model of one .onnx file: its name less .onnx, or,
// for a model.onnx in a repository's layout (NAME/VERSION/model.onnx),
// the model's name, as the repository would serve it.
func singleName(file string) string {
	dir, base := filepath.Split(filepath.Clean(file))
	if base == ModelFile {
		versionDir, version := filepath.Split(filepath.Clean(dir))
		if v, err := strconv.ParseInt(version, 10, 64); err == nil && v >= 1 {
			if name := filepath.Base(filepath.Clean(versionDir)); versionDir != "" && ValidModelName(name) == nil {
				return name
			}
		}
	}
	return strings.TrimSuffix(base, ".onnx")
}

// versionFolders reports whether every entry of a would-be repository is
// a version folder holding a model (1/model.onnx, ...): it is then one
// model's folder, given where its repository was meant.
func versionFolders(fsys fs.FS, names []string) bool {
	for _, n := range names {
		if v, err := strconv.ParseInt(n, 10, 64); err != nil || v < 1 {
			return false
		}
		if _, err := fs.Stat(fsys, path.Join(n, ModelFile)); err != nil {
			return false
		}
	}
	return true
}
