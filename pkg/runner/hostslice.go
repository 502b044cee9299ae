package runner

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
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
// it.
const LoadSlice = 100 * time.Millisecond

// LoadNice is how many steps of nice a model host lowers its priority by
// while it loads (to 19 at most), where it may raise it again after: as
// root, with CAP_SYS_NICE, or with an RLIMIT_NICE that allows the
// server's own nice value (ulimit -e, systemd's LimitNICE=). At 10 steps
// the kernel weighs a load at a tenth of a serving task
// (sched_prio_to_weight: 110 against 1024), so that a load yields to the
// serving tasks on the same cores and still progresses on cores they keep
// busy. A host starts at this priority (spawnLowered), loads under
// SCHED_IDLE first (hostPriority), and is put under SCHED_IDLE before it
// is killed (lowerForExit); the server's own part of a load keeps the
// server's priority (docs/performance.md, many models). Without that
// permission a host loads at its server's priority, with LoadSlice only.
const LoadNice = 10

// loadIdleFor is how long a model host loads under SCHED_IDLE before it
// goes on at LoadNice steps below its server (hostPriority).
var loadIdleFor = 250 * time.Millisecond

// hostPriority is a model host's scheduling while it loads and after.
//
// Where the host may raise its priority again (mayRaise), it loads under
// SCHED_IDLE for loadIdleFor, then at LoadNice steps below its server:
// the kernel preempts an idle-policy task for any other that wakes, at
// once, where a lower nice value alone leaves a waking server thread
// waiting on its lag, up to a tick (4 ms at 250 Hz). A load that the
// cores' other work leaves no idle time for still ends, at the weight of
// its nice value.
type hostPriority struct {
	nice    int32  // the nice value to serve at: the server's
	lowered bool   // whether the load runs below the server
	idled   bool   // whether this process put its threads under SCHED_IDLE
	policy  uint32 // the policy they had: SCHED_NORMAL or SCHED_BATCH

	mu     sync.Mutex
	served bool
	timer  *time.Timer
}

// lowerForLoad lowers every thread of this process for the load (see
// hostPriority); without leave to raise it again, it only gives them
// LoadSlice.
func lowerForLoad() (*hostPriority, error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return nil, fmt.Errorf("sched_getattr: %w", err)
	}
	p := &hostPriority{nice: attr.Nice}
	if v, err := strconv.Atoi(os.Getenv(envServeNice)); err == nil && v >= -20 && v <= 19 {
		p.nice = int32(v) // started lowered (spawnLowered)
	}
	load := min(p.nice+LoadNice, 19)
	if load <= p.nice || !mayRaise(p.nice) {
		return p, setScheduling(LoadSlice, p.nice)
	}
	p.lowered = true
	if attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH {
		return p, setScheduling(LoadSlice, load) // a policy an operator chose
	}
	p.idled, p.policy = true, attr.Policy
	p.timer = time.AfterFunc(loadIdleFor, p.escalate)
	return p, eachThread("self", false, func(a *unix.SchedAttr) { a.Policy, a.Nice, a.Runtime = unix.SCHED_IDLE, load, 0 })
}

// escalate moves a load that is still running from SCHED_IDLE to LoadNice
// steps below the server, with LoadSlice.
func (p *hostPriority) escalate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.served {
		return
	}
	load := min(p.nice+LoadNice, 19)
	_ = eachThread("self", true, func(a *unix.SchedAttr) {
		a.Policy, a.Nice, a.Runtime = p.policy, load, uint64(LoadSlice.Nanoseconds())
	})
}

// envServeNice tells a model host started lowered (spawnLowered) the
// nice value to serve at: its server's.
const envServeNice = "INFER_MODEL_HOST_NICE"

// spawnLowered calls start, which starts a model host, on the spawner
// thread (onSpawner), lowered LoadNice steps where this process may raise
// it again (mayRaise), and gives start the environment that tells the
// host its server's nice value, and reaped, which the host's owner calls
// once the host has exited (modelhost.Spawn.Reaped) when start returns no
// error. A child takes its creator's nice value, so the host loads at its
// load's priority from its first instruction, the kernel's exec and its
// runtime's start included, which would otherwise run at the server's
// until the host lowers itself. The thread is raised again after; should
// that fail, it stays lowered, and only hosts are started from it.
func spawnLowered(start func(env []string, reaped func()) error) (err error) {
	onSpawner(func(reaped func()) error {
		tid := unix.Gettid()
		attr, e := unix.SchedGetAttr(tid, 0)
		if e != nil || attr.Nice >= 19 || !mayRaise(attr.Nice) {
			return start(nil, reaped)
		}
		if unix.Setpriority(unix.PRIO_PROCESS, tid, int(min(attr.Nice+LoadNice, 19))) != nil {
			return start(nil, reaped)
		}
		err := start([]string{envServeNice + "=" + strconv.Itoa(int(attr.Nice))}, reaped)
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, int(attr.Nice))
		return err
	}, &err)
	return err
}

// spawner is the OS thread model hosts are started from. A host is
// started asking the kernel for SIGKILL when its parent dies (Pdeathsig),
// so that no host outlives its server; but the parent the kernel means is
// the thread that started it, not the process (go.dev/issue/27505), and
// Go ends a thread when a goroutine locked to it exits. The spawner's
// goroutine keeps its thread locked for as long as a host it started
// lives, and ends with the last of them (the thread with it, harming
// none); the next start begins another.
var spawner struct {
	mu   sync.Mutex
	live int           // hosts started from the current thread and not yet reaped, and starts under way
	jobs chan func()   // the current goroutine's; nil when none runs
	quit chan struct{} // closed to end the current goroutine
}

// onSpawner runs f on the spawner thread, giving it the function the
// host it starts calls once reaped, and stores f's error in err; a panic
// in f is the caller's. A start that fails counts no host.
func onSpawner(f func(reaped func()) error, err *error) {
	spawner.mu.Lock()
	spawner.live++
	if spawner.jobs == nil {
		jobs, quit := make(chan func()), make(chan struct{})
		spawner.jobs, spawner.quit = jobs, quit
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			for {
				select {
				case job := <-jobs:
					job()
				case <-quit:
					return
				}
			}
		}()
	}
	jobs, quit := spawner.jobs, spawner.quit
	spawner.mu.Unlock()
	var once sync.Once
	reaped := func() {
		once.Do(func() {
			spawner.mu.Lock()
			defer spawner.mu.Unlock()
			if spawner.live--; spawner.live == 0 && spawner.quit == quit {
				close(quit)
				spawner.jobs, spawner.quit = nil, nil
			}
		})
	}
	var panicked any
	done := make(chan struct{})
	jobs <- func() {
		defer close(done)
		defer func() { panicked = recover() }()
		*err = f(reaped)
	}
	<-done
	if panicked != nil || *err != nil {
		reaped() // no host was started
	}
	if panicked != nil {
		panic(panicked)
	}
}

// serve gives every thread of this process HostSlice at the server's nice
// value, under its own policy again (SCHED_NORMAL or SCHED_BATCH) where
// the load put it under SCHED_IDLE.
func (p *hostPriority) serve() error {
	if p == nil {
		return nil // lowerForLoad could not read the scheduling: nothing was changed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served = true
	if p.timer != nil {
		p.timer.Stop()
	}
	return eachThread("self", p.idled, func(a *unix.SchedAttr) {
		if a.Policy == unix.SCHED_IDLE {
			a.Policy = p.policy
		}
		a.Nice, a.Runtime = p.nice, uint64(HostSlice.Nanoseconds())
	})
}

// mayRaise reports whether this process may set its threads' nice value
// back to nice after lowering it: with CAP_SYS_NICE in its effective set,
// or an RLIMIT_NICE of at least 20-nice (setpriority(2), can_nice in the
// kernel).
func mayRaise(nice int32) bool {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NICE, &lim) == nil && (lim.Cur == unix.RLIM_INFINITY || lim.Cur >= uint64(20-nice)) {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_NICE/32].Effective&(1<<(unix.CAP_SYS_NICE%32)) != 0
}

// setScheduling asks for slice and nice on every thread of this process,
// keeping each one's policy; threads created later inherit them from
// their creator. A kernel older than 6.12 takes the call and keeps its
// default slice.
func setScheduling(slice time.Duration, nice int32) error {
	return setProcessScheduling("self", slice, nice)
}

// lowerForExit puts every thread of model host pid, about to be killed,
// under SCHED_IDLE. A process's exit frees its memory in the kernel, at
// the priority of its threads, and the kernel here is preempted only
// where it offers to be: a serving host's teardown of its hundreds of
// megabytes would run before the server's threads for milliseconds. The
// kernel preempts an idle-policy task for any other that wakes, at once
// (a lower nice value alone waits on the waking thread's lag, up to a
// tick). Nobody waits on an exit, so it may wait for idle time. Lowering
// needs no permission; errors are ignored, since the host is ended either
// way.
func lowerForExit(pid int) {
	_ = eachThread(strconv.Itoa(pid), false, func(attr *unix.SchedAttr) {
		attr.Policy, attr.Nice, attr.Runtime = unix.SCHED_IDLE, 19, 0
	})
}

// setProcessScheduling is setScheduling for process proc ("self" or a
// process ID).
func setProcessScheduling(proc string, slice time.Duration, nice int32) error {
	return eachThread(proc, false, func(attr *unix.SchedAttr) {
		attr.Runtime, attr.Nice = uint64(slice.Nanoseconds()), nice
	})
}

// eachThread changes the scheduling of every thread of process proc
// ("self" or a process ID) with set, skipping those under a real-time or
// idle policy an operator chose; idle, those under SCHED_IDLE are this
// process's own doing, and are changed too.
func eachThread(proc string, idle bool, set func(*unix.SchedAttr)) error {
	tasks, err := os.ReadDir("/proc/" + proc + "/task")
	if err != nil {
		return fmt.Errorf("list process %s's threads: %w", proc, err)
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
		if attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH && (!idle || attr.Policy != unix.SCHED_IDLE) {
			continue // a real-time or idle policy an operator chose
		}
		attr.Size, attr.Flags = unix.SizeofSchedAttr, 0
		set(attr)
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("thread %d: sched_setattr: %w", tid, err)
		}
	}
	return nil
}
