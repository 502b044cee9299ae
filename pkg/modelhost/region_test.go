package modelhost

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// rssShmem reads this process's resident shared memory, in KiB.
func rssShmem(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssShmem:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Skip("no RssShmem in /proc/self/status")
	return 0
}

// Zero leaves the bytes it covers reading zero and gives their pages
// back: the process's resident shared memory falls by their size, and the
// bytes past them keep their contents.
func TestZeroGivesThePagesBack(t *testing.T) {
	const size = 8 << 20
	r, err := NewRegion("zero-test", size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mem := r.Bytes()
	for i := range mem {
		mem[i] = 0xA5
	}
	before := rssShmem(t)
	if err := r.Zero(size - 4096); err != nil {
		t.Fatal(err)
	}
	if after := rssShmem(t); before-after < (size-4096)>>10*9/10 {
		t.Errorf("resident shared memory %d KiB before Zero, %d after: want about %d KiB fewer", before, after, (size-4096)>>10)
	}
	// (Reading the hole takes pages again: measured before this.)
	mem = r.Bytes()
	if i := bytes.IndexFunc(mem[:size-4096], func(c rune) bool { return c != 0 }); i >= 0 {
		t.Fatalf("byte %d reads %#x after Zero, want 0", i, mem[i])
	}
	if mem[size-1] != 0xA5 {
		t.Fatalf("the last page, past what was zeroed, reads %#x, want 0xa5", mem[size-1])
	}
	if err := r.Zero(0); err != nil {
		t.Errorf("Zero(0): %v", err)
	}
}

// A region cannot be cut under a mapping of it, by either side (a host
// that truncated it would kill the server with SIGBUS at its next touch
// of a page past the end), and still grows.
func TestRegionCannotShrink(t *testing.T) {
	r, err := NewRegion("shrink-test", minRegion)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := unix.Ftruncate(int(r.File().Fd()), 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("truncating the region: %v, want EPERM", err)
	}
	if err := r.Grow(4 * minRegion); err != nil {
		t.Fatalf("growing a sealed region: %v", err)
	}
	if err := r.Remap(4 * minRegion); err != nil || r.Size() != 4*minRegion {
		t.Fatalf("remapped at %d bytes (%v), want %d", r.Size(), err, 4*minRegion)
	}
	if err := r.Remap(8 * minRegion); err == nil {
		t.Fatal("a region remapped at a size past its file's")
	}
}
