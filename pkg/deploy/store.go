package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store keeps each model's traffic policy in a state folder, one JSON file
// per model, written atomically: a crash or kill at any moment leaves
// either the old policy or the new one, never a torn file.
type Store struct {
	Dir string
}

func (s Store) path(model string) (string, error) {
	if model == "" || strings.ContainsAny(model, `/\`) || model == "." || model == ".." {
		return "", fmt.Errorf("model name %q cannot name a state file", model)
	}
	return filepath.Join(s.Dir, "traffic."+model+".json"), nil
}

// Save writes model's policy: to a temporary file, synced, renamed over
// the old one, and the folder synced so the rename itself is durable.
func (s Store) Save(model string, p Policy) error {
	path, err := s.path(model)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".traffic-*.tmp")
	if err != nil {
		return fmt.Errorf("save policy of %q: %w", model, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up a failure
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save policy of %q: %w", model, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save policy of %q: %w", model, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save policy of %q: %w", model, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save policy of %q: %w", model, err)
	}
	if dir, err := os.Open(s.Dir); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}

// Delete removes model's policy; a missing one is not an error.
func (s Store) Delete(model string) error {
	path, err := s.path(model)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Load returns every model's saved policy.
func (s Store) Load() (map[string]Policy, error) {
	out := map[string]Policy{}
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		model, ok := strings.CutPrefix(name, "traffic.")
		if !ok || !strings.HasSuffix(model, ".json") || e.IsDir() {
			continue
		}
		model = strings.TrimSuffix(model, ".json")
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil {
			return nil, err
		}
		var p Policy
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
		out[model] = p
	}
	return out, nil
}
