package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"gopkg.in/yaml.v3"
)

// contentDigest returns the revision of a loaded version: "sha256:" and
// the hex SHA-256 of its model file's bytes followed by its configuration
// in effect, as YAML. Two loads of the same files give the same digest; a
// replaced model file or a changed config.yaml gives another. file is the
// SHA-256 of the model file's bytes alone, from the same pass over them.
func contentDigest(onnx []byte, cfg Config) (digest string, file [sha256.Size]byte) {
	h := sha256.New()
	h.Write(onnx)
	h.Sum(file[:0])
	c, err := yaml.Marshal(cfg)
	if err != nil { // a Config is plain data: this is a bug, not bad input
		c = fmt.Appendf(nil, "%#v", cfg)
	}
	h.Write(c)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), file
}

// Digest returns the content digest of model name's loaded version v (see
// contentDigest), or ErrModelNotFound/ErrModelNotReady as Model does.
func (r *Repository) Digest(name string, v int64) (string, error) {
	if _, err := r.Model(name, v); err != nil {
		return "", err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ver, ok := r.models[name][v]; ok && ver.model != nil {
		return ver.digest, nil
	}
	return "", fmt.Errorf("%w: model %q version %d", ErrModelNotReady, name, v)
}
