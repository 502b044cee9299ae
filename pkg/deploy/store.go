package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Store keeps state in a folder, one JSON file per model and kind (its
// traffic policy, its rollout), written atomically: a crash or kill at any
// moment leaves either the old state or the new one, never a torn file.
type Store struct {
	Dir string
}

// State file kinds.
const (
	kindTraffic = "traffic"
	kindRollout = "rollout"
)

func (s Store) path(kind, model string) (string, error) {
	if model == "" || strings.ContainsAny(model, `/\`) || model == "." || model == ".." {
		return "", fmt.Errorf("model name %q cannot name a state file", model)
	}
	return filepath.Join(s.Dir, kind+"."+model+".json"), nil
}

// Save writes model's policy.
func (s Store) Save(model string, p Policy) error { return s.save(kindTraffic, model, p) }

// SaveRollout writes model's rollout state.
func (s Store) SaveRollout(model string, st State) error { return s.save(kindRollout, model, st) }

// save writes v: to a temporary file, synced, renamed over the old one,
// and the folder synced so the rename itself is durable.
func (s Store) save(kind, model string, v any) error {
	path, err := s.path(kind, model)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	tmp, err := os.CreateTemp(s.Dir, "."+kind+"-*.tmp")
	if err != nil {
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up a failure
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save %s state of %q: %w", kind, model, err)
	}
	syncDir(s.Dir)
	return nil
}

// Delete removes model's policy; a missing one is not an error.
func (s Store) Delete(model string) error { return s.remove(kindTraffic, model) }

// DeleteRollout removes model's rollout state; a missing one is not an
// error.
func (s Store) DeleteRollout(model string) error { return s.remove(kindRollout, model) }

// remove deletes a state file and syncs the folder, so that the removal
// is as durable as a save.
func (s Store) remove(kind, model string) error {
	path, err := s.path(kind, model)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s state of %q: %w", kind, model, err)
	}
	syncDir(s.Dir)
	return nil
}

// syncDir makes a rename or removal in dir durable. The rename or removal
// is the commit point, already visible to every reader: a failure to sync
// after it cannot be undone and is not reported as the change failing.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Load returns every model's saved policy.
func (s Store) Load() (map[string]Policy, error) { return load[Policy](s, kindTraffic) }

// LoadRollouts returns every model's saved rollout.
func (s Store) LoadRollouts() (map[string]State, error) { return load[State](s, kindRollout) }

func load[T any](s Store, kind string) (map[string]T, error) {
	out := map[string]T{}
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		model, ok := strings.CutPrefix(name, kind+".")
		if !ok || !strings.HasSuffix(model, ".json") || e.IsDir() {
			continue
		}
		model = strings.TrimSuffix(model, ".json")
		data, err := readStateFile(filepath.Join(s.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
		out[model] = v
	}
	return out, nil
}

// maxStateBytes bounds a state file: a rollout keeps at most historyLimit
// events, some hundreds of kilobytes.
const maxStateBytes = 16 << 20

// readStateFile reads a state file that must be a regular file (followed
// through symbolic links) of at most maxStateBytes: a FIFO, a device or
// a file grown by hand would otherwise block the server's start or fill
// its memory. A FIFO is opened without waiting for a writer.
func readStateFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s): remove it, or restore the file the server wrote", info.Mode().Type())
	}
	if info.Size() > maxStateBytes {
		return nil, fmt.Errorf("%d bytes, over the %d MiB a state file holds: remove it, or restore the file the server wrote", info.Size(), maxStateBytes>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err == nil && len(data) > maxStateBytes {
		err = fmt.Errorf("grew past %d MiB while read", maxStateBytes>>20)
	}
	return data, err
}
