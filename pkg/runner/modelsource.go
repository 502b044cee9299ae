package runner

import (
	"crypto/sha256"
	"fmt"
)

// modelSource is where a model host gets its model's bytes when it starts
// again after a crash: the bytes themselves, kept in the server's memory
// for as long as the version is loaded, or, where the repository can read
// the file again (LoadOptions.ReadModel), that reading, checked against
// the SHA-256 of the bytes first loaded. With the second, the server holds
// nothing of a loaded version's weights: its model hosts do.
type modelSource struct {
	kept   []byte
	reread func() ([]byte, error)
	sum    [sha256.Size]byte
}

// newModelSource keeps onnx, or only its digest when reread can read the
// same bytes again; sum, when not nil, is that digest, computed already.
func newModelSource(onnx []byte, reread func() ([]byte, error), sum *[sha256.Size]byte) modelSource {
	switch {
	case reread == nil:
		return modelSource{kept: onnx}
	case sum == nil:
		return modelSource{reread: reread, sum: sha256.Sum256(onnx)}
	}
	return modelSource{reread: reread, sum: *sum}
}

// bytes returns the model's bytes. It fails when the file cannot be read
// or no longer holds what was loaded: a host must not start on a model
// other than the version's (a changed file loads as a new version, in
// poll mode, or by the admin API's load).
func (s modelSource) bytes() ([]byte, error) {
	if s.reread == nil {
		if s.kept == nil {
			return nil, fmt.Errorf("model bytes: %w", ErrClosed)
		}
		return s.kept, nil
	}
	data, err := s.reread()
	if err != nil {
		return nil, fmt.Errorf("read the model again for its host: %w", err)
	}
	if sha256.Sum256(data) != s.sum {
		return nil, fmt.Errorf("the model file changed since this version loaded (%d bytes now): load the version again to serve the new file", len(data))
	}
	return data, nil
}
