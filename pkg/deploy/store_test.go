package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A state file that is a FIFO, a device or a file grown past any state's
// size is refused naming it, at once: a FIFO once held the server's start
// for good, and a link to /dev/zero filled its memory.
func TestStateFilesThatAreNotStateAreRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file"},
		{"device", func(p string) error { return os.Symlink("/dev/zero", p) }, "not a regular file"},
		{"huge", func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(maxStateBytes + 1) // sparse: costs no disk
		}, "over the 16 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := Store{Dir: t.TempDir()}
			if err := c.make(filepath.Join(store.Dir, "traffic.m.json")); err != nil {
				t.Fatal(err)
			}
			_, err := store.Load()
			if err == nil || !strings.Contains(err.Error(), "traffic.m.json") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want an error naming the file and %q", err, c.want)
			}
		})
	}
}
