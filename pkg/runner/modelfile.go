package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// modelBytes returns the bytes of the repository's model file for a load,
// and the function that releases them once the load is over.
//
// Where the repository is a directory and the version's sessions run in
// model hosts (not a generator's, whose decoder keeps its bytes), the
// hosts read the file themselves (opts.OpenModel is set) and the server
// needs no more than the graph's interface: the file is mapped, not read,
// so that the load touches only the pages that hold the graph's
// structure, never the weights', and puts nothing on the Go heap. A file
// cut shorter while mapped faults on a page past its end: the goroutine
// panics (debug.SetPanicOnFault) instead of the process crashing, and
// LoadModel turns the panic into the load's error. The caller must call
// release from the goroutine that called modelBytes.
func (r *Repository) modelBytes(file string, cfg Config, opts *LoadOptions) (data []byte, release func(), err error) {
	f, err := r.openOSFile(file)
	if errors.Is(err, errNotOSFile) {
		data, err = r.readModel(file)
		return data, func() {}, err
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	opts.OpenModel = func() (*os.File, error) { return r.openOSFile(file) }
	if opts.isolation(cfg) != IsolationProcess || cfg.Generation != nil {
		data, err = readOpen(f)
		return data, func() {}, err
	}
	if data, err = mapFile(f); err != nil || data == nil { // nil: an empty file, nothing to map
		return nil, func() {}, err
	}
	fault := debug.SetPanicOnFault(true)
	return data, func() {
		debug.SetPanicOnFault(fault)
		_ = unix.Munmap(data)
	}, nil
}

// regular fails unless the repository's file is a regular file (a link
// to one included): opening a named pipe blocks until a writer comes,
// and a device can be read without end, so a model file that is either
// would hold its load, and the server's shutdown, for ever.
func (r *Repository) regular(file string) error {
	st, err := fs.Stat(r.src, file)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): a model file must be one", file, st.Mode().Type())
	}
	return nil
}

// readModel reads the repository's model file again, for a model host
// that starts again after a crash (LoadOptions.ReadModel).
func (r *Repository) readModel(file string) ([]byte, error) {
	if err := r.regular(file); err != nil {
		return nil, err
	}
	return fs.ReadFile(r.src, file)
}

// readOpen reads the open file f whole, its buffer sized once from its
// length.
func readOpen(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	if st, err := f.Stat(); err == nil && st.Size() > 0 && st.Size() == int64(int(st.Size())) {
		b.Grow(int(st.Size()) + bytes.MinRead)
	}
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return b.Bytes(), nil
}

// mapFile maps f read-only and private, whole; nil for an empty file.
func mapFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	if st.Size() != int64(int(st.Size())) {
		return nil, fmt.Errorf("%s: %d bytes cannot be mapped", f.Name(), st.Size())
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", f.Name(), err)
	}
	return data, nil
}

// openOSFile opens the repository's file as an operating system file, or
// fails when the repository is no directory (an embedded one).
func (r *Repository) openOSFile(file string) (*os.File, error) {
	if err := r.regular(file); err != nil {
		return nil, err
	}
	f, err := r.src.Open(file)
	if err != nil {
		return nil, err
	}
	osf, ok := f.(*os.File)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s: %w", file, errNotOSFile)
	}
	return osf, nil
}

// errNotOSFile is openOSFile's error for a repository that is no
// directory.
var errNotOSFile = errors.New("not a file of the operating system's (an embedded repository)")
