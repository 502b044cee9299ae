package runner

/*
#include <malloc.h>

// heapInUse is the C heap's bytes in use: small blocks and mmapped ones
// (glibc's mallinfo2, 2.33 and later).
static size_t heapInUse(void) {
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}
*/
import "C"

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// A version's memory is what it holds beyond the server's own: where
// models run isolated, the resident memory of its model hosts (VmRSS of
// /proc/PID/status, the pages the kernel counts against the process, the
// runtime library's shared pages included, so sizes err high); in the
// server's process, the growth of the C heap, where ONNX Runtime's CPU
// allocator takes its memory, across the version's load and warm-up.

// heapLoads serialises in-process loads, so that the heap's growth
// across one is that load's alone. Loads in model hosts are not held.
var heapLoads sync.Mutex

// cHeapInUse returns the C heap's bytes in use.
func cHeapInUse() int64 { return int64(C.heapInUse()) }

// hostsRSS returns the summed resident memory of model version m's live
// model hosts, in bytes, and whether it has any.
func hostsRSS(m *Model) (int64, bool) {
	var total int64
	found := false
	add := func(h *host) {
		if h == nil {
			return
		}
		p := h.live.Load()
		if p == nil {
			return
		}
		found = true
		if rss, err := processRSS(p.Pid()); err == nil {
			total += rss
		}
	}
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); ok {
			add(h.host)
		}
	}
	if m.decoder != nil {
		add(m.decoder.remote)
	}
	return total, found
}

// processRSS reads a process's VmRSS from /proc/PID/status, in bytes.
func processRSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return statusRSS(data)
}

// statusRSS finds VmRSS in the text of a /proc/PID/status file.
func statusRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want a number of kB", line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %w", line, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS line (a kernel thread, or not Linux)")
}

// ProcessRSS returns the resident memory of this process and of each
// model host it runs (the children whose RSS counts against the
// machine), in bytes: what the memory budget's statement bounds.
func (r *Repository) ProcessRSS() (self, hosts int64, err error) {
	if self, err = processRSS(os.Getpid()); err != nil {
		return 0, 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, versions := range r.models {
		for _, v := range versions {
			if v.model != nil {
				n, _ := hostsRSS(v.model)
				hosts += n
			}
		}
	}
	return self, hosts, nil
}

// physicalMemory is the machine's memory in bytes (sysinfo's total RAM),
// 0 when unknown: the ceiling of a budget that lives in the server's own
// process.
func physicalMemory() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
