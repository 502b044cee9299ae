// Package modelhost runs model execution in supervised child processes:
// the parent and each host share one memory region (a memfd mapped by
// both) that holds a batch's input and output tensors, and exchange small
// fixed-layout messages over a Unix socket, so a batch's bytes are never
// copied through the socket. A native crash inside the runtime (SIGFPE,
// SIGSEGV, abort, an out-of-memory kill) ends the host, never the server.
//
// The package knows nothing of the runtime or of models: it owns the
// region, the wire format and the child process. The runner speaks
// through it on both sides.
package modelhost

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// minRegion is the smallest region mapped, in bytes: most batches of the
// bundled models fit without a resize.
const minRegion = 1 << 20

// Region is a shared memory region: a memfd mapped read-write into this
// process. Either side may grow it (only the side whose turn it is: the
// parent before it sends a batch, the host before it answers), and the
// other remaps on seeing the larger size in the next message.
type Region struct {
	f   *os.File
	mem []byte
}

// NewRegion creates a region of at least size bytes, sealed against
// shrinking (F_SEAL_SHRINK): neither side can cut the file under the
// other's mapping, where a touch of a page past its end would kill that
// side with SIGBUS. A region is only ever grown.
func NewRegion(name string, size int) (*Region, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	r := &Region{f: os.NewFile(uintptr(fd), name)}
	if err := r.Grow(size); err != nil {
		r.f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		r.Close()
		return nil, fmt.Errorf("seal shared region: %w", err)
	}
	return r, nil
}

// OpenRegion maps the region held by f (the host's end), at its current
// size.
func OpenRegion(f *os.File) (*Region, error) {
	r := &Region{f: f}
	if err := r.Remap(0); err != nil {
		return nil, err
	}
	return r, nil
}

// Bytes returns the mapped region. The slice is valid until the next Grow
// or Remap.
func (r *Region) Bytes() []byte { return r.mem }

// Size returns the mapped size in bytes.
func (r *Region) Size() int { return len(r.mem) }

// File returns the memfd, to hand to a child process.
func (r *Region) File() *os.File { return r.f }

// Grow makes the region at least size bytes (rounded up to a power of
// two, at least minRegion), keeping its contents; it does nothing when
// the region is already that large.
func (r *Region) Grow(size int) error {
	if size <= len(r.mem) {
		return nil
	}
	n := minRegion
	for n < size {
		if n > 1<<40 {
			return fmt.Errorf("shared region: %d bytes is too large", size)
		}
		n <<= 1
	}
	if err := r.f.Truncate(int64(n)); err != nil {
		return fmt.Errorf("grow shared region to %d bytes: %w", n, err)
	}
	return r.Remap(n)
}

// Remap maps the region again at the file's current size when that
// differs from the mapping, as after the other side grew it. want, when
// positive, is the size the other side announced: a file smaller than
// that is an error. When it is the size mapped there is nothing to do,
// and no system call: the file never shrinks (NewRegion seals it).
func (r *Region) Remap(want int) error {
	if want > 0 && want == len(r.mem) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
		return fmt.Errorf("stat shared region: %w", err)
	}
	size := int(st.Size)
	if want > 0 && size < want {
		return fmt.Errorf("shared region holds %d bytes, %d announced", size, want)
	}
	if size == len(r.mem) {
		return nil
	}
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			return fmt.Errorf("unmap shared region: %w", err)
		}
		r.mem = nil
	}
	if size == 0 {
		return nil
	}
	mem, err := unix.Mmap(int(r.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map shared region of %d bytes: %w", size, err)
	}
	r.mem = mem
	return nil
}

// Zero returns the region's first n bytes to zeros and gives their pages
// back to the kernel, which both processes' resident memory counted: it
// punches a hole in the memfd (reads of it see zeros; a write takes a page
// again). Where the kernel cannot punch holes it writes the zeros instead.
func (r *Region) Zero(n int) error {
	n = min(n, len(r.mem))
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(r.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, int64(n))
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		clear(r.mem[:n])
		return nil
	}
	if err != nil {
		return fmt.Errorf("release %d bytes of the shared region: %w", n, err)
	}
	return nil
}

// Close unmaps the region and closes its file.
func (r *Region) Close() error {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	return r.f.Close()
}

// Align rounds n up to the 64-byte alignment every tensor in a region
// starts at (a cache line; the runtime's kernels prefer it).
func Align(n int) int { return (n + 63) &^ 63 }
