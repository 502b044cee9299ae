package runner

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"

	"gopkg.in/yaml.v3"
)

// contentDigest returns the revision of a loaded version: "sha256:" and
// the hex SHA-256 of its model file's bytes followed by its configuration
// in effect, as YAML. Two loads of the same files give the same digest; a
// replaced model file or a changed config.yaml gives another.
func contentDigest(onnx []byte, cfg Config) string {
	h := sha256.New()
	h.Write(onnx)
	return finishDigest(h, cfg)
}

// finishDigest completes contentDigest from h, a SHA-256 that has taken
// the model file's bytes.
func finishDigest(h hash.Hash, cfg Config) string {
	c, err := yaml.Marshal(cfg)
	if err != nil { // a Config is plain data: this is a bug, not bad input
		c = fmt.Appendf(nil, "%#v", cfg)
	}
	h.Write(c)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// resumeHash returns the SHA-256 whose state a model host reported after
// the model's bytes (hostLoaded.Hash).
func resumeHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("model host's hash of the model: %w", err)
	}
	return h, nil
}

// hashSum returns the SHA-256 of the model's bytes from a model host's
// reported state.
func hashSum(state []byte) (sum [sha256.Size]byte, err error) {
	h, err := resumeHash(state)
	if err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// contentDigest returns the version's content digest (the function's): from
// its model hosts' hash of the model file where its sessions run in hosts,
// otherwise by hashing onnx, its bytes.
func (m *Model) contentDigest(onnx []byte, cfg Config) string {
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); ok && h.hash != nil {
			if hh, err := resumeHash(h.hash); err == nil {
				return finishDigest(hh, cfg)
			}
		}
	}
	return contentDigest(onnx, cfg)
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
