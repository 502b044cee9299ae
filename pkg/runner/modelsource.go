package runner

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
)

// modelSource is where a model host gets its model's bytes, when it first
// starts and again after a crash: the model file itself, which the host
// reads (LoadOptions.OpenModel: the server never touches the weights);
// the file read again by the server (LoadOptions.ReadModel, for a
// repository that is no directory) and copied into the host's region; or
// the bytes themselves, kept in the server's memory for as long as the
// version is loaded. Every host reports the SHA-256 of what it loaded,
// which must match the first one's: a host never starts on a model other
// than its version's (a changed file loads as a new version, in poll mode,
// or by the admin API's load).
type modelSource struct {
	kept   []byte
	reread func() ([]byte, error)
	open   func() (*os.File, error)
	sum    [sha256.Size]byte // what the version's hosts loaded, once summed
	summed bool
}

// newModelSource prefers open, then reread, then keeping onnx; sum, when
// not nil, is the SHA-256 every host must report.
func newModelSource(onnx []byte, reread func() ([]byte, error), open func() (*os.File, error), sum *[sha256.Size]byte) modelSource {
	var s modelSource
	switch {
	case open != nil:
		s.open = open
	case reread != nil:
		s.reread = reread
	default:
		s.kept = onnx
	}
	if sum != nil {
		s.sum, s.summed = *sum, true
	}
	return s
}

// bytes returns the model's bytes for a host's region, or nil when the
// host reads the file itself. It fails when the file cannot be read.
func (s modelSource) bytes() ([]byte, error) {
	switch {
	case s.open != nil:
		return nil, nil
	case s.reread != nil:
		data, err := s.reread()
		if err != nil {
			return nil, fmt.Errorf("read the model again for its host: %w", err)
		}
		return data, nil
	case s.kept == nil:
		return nil, fmt.Errorf("model bytes: %w", ErrClosed)
	}
	return s.kept, nil
}

// file opens the model file for a host to read, or returns nil when the
// host gets the bytes in its region.
func (s modelSource) file() (*os.File, error) {
	if s.open == nil {
		return nil, nil
	}
	f, err := s.open()
	if err != nil {
		return nil, fmt.Errorf("open the model file for its host: %w", err)
	}
	return f, nil
}

// loaded checks the SHA-256 a host reports of the model it loaded against
// the version's, and records it for the next when it is the first.
func (s *modelSource) loaded(sum [sha256.Size]byte) error {
	if !s.summed {
		s.sum, s.summed = sum, true
		return nil
	}
	if sum != s.sum {
		return fmt.Errorf("%w (other bytes of the same size): load the version again to serve the new file", ErrModelChanged)
	}
	return nil
}

// ErrModelChanged is the error of a model host that found the model file
// other than its version's: no retry brings the version's bytes back, so
// the version gives up at once.
var ErrModelChanged = errors.New("the model file changed since this version loaded")
