package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// HostSlice is the scheduler time slice a model host asks the kernel for,
// for each of its threads: the shortest Linux allows (EEVDF custom
// slices, Linux 6.12 on: sched_setattr's sched_runtime for SCHED_NORMAL,
// clamped to 0.1-100 ms; Documentation/scheduler/sched-eevdf.rst).
//
// A host sleeps until its server hands it a batch, then computes for
// microseconds to milliseconds. On a core the server's front end keeps
// busy, a task woken with the default slice (0.75-3 ms, by core count)
// waits for the running one to use its slice up; one that asks for a
// short slice gets an earlier deadline and runs at once. The share of the
// CPU is unchanged (that is the nice value's, which stays as it was); a
// host that computes long is preempted more often. Measured with
// scripts/overload.sh's flood of mlp on the server's one core, fixed-shape
// probed at 100/s, while other processes' builds and tests shared the
// core: the probe's p50 1.5-2.7 ms against 5.5-7.4 ms with the default
// slice. With nothing else on the core the two read the same (p50 4.5-6.6
// against 5.1-7.9 ms): the server's own wait for the network poll
// dominates there.
const HostSlice = 100 * time.Microsecond

// LoadSlice is the slice a model host asks for while it loads its model
// (starts the runtime, creates and optimizes the session): the longest
// Linux allows. A long slice gives a late deadline, so that the server's
// threads and the serving hosts preempt the load instead of waiting for
// it, while the load keeps its share of the CPU. A server loading models
// on demand beside hot ones keeps the hot ones' latency.
const LoadSlice = 100 * time.Millisecond

// requestSlice asks for slice on every thread of this process, keeping
// each one's policy and nice value; threads created later inherit it from
// their creator. A kernel older than 6.12 takes the call and keeps its
// default slice.
func requestSlice(slice time.Duration) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list this process's threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // the thread has exited
		}
		if attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH {
			continue // a real-time or idle policy an operator chose
		}
		attr.Size, attr.Flags = unix.SizeofSchedAttr, 0
		attr.Runtime = uint64(slice.Nanoseconds())
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("thread %d: sched_setattr: %w", tid, err)
		}
	}
	return nil
}
