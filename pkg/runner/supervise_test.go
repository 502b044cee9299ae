package runner

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/modelhost"
)

// loadHostedDecoder loads the bundled tiny-gpt's decoder in a model host.
func loadHostedDecoder(t *testing.T) *Decoder {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundled, "tiny-gpt", "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadDecoder("tiny-gpt", data, Config{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if d.remote == nil {
		t.Fatal("the decoder runs in process, want a model host")
	}
	return d
}

// untilLoading waits, bounded, for h to spawn a process other than old
// and returns it while it is still loading its model, or nil when the
// load finished first.
func untilLoading(t *testing.T, h *host, old *modelhost.Process) *modelhost.Process {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if p := h.live.Load(); p != nil && p != old {
			if h.doing() == hostLoading {
				return p
			}
			return nil
		}
		if time.Now().After(end) {
			t.Fatal("no host started within 30 s of the last one's death")
		}
	}
}

// Replacement hosts killed from outside while they load (kill -9 or the
// OOM killer, as memory runs short at a restart), more times in a row than
// the crash limit, never take the version down: nothing its model did
// ended them. Each counted as a crash in a row once made the version
// UNAVAILABLE for good.
func TestHostsKilledWhileLoadingNeverTakeTheVersionDown(t *testing.T) {
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	h := m.instances[0].(*hostedInstance).host
	p := h.live.Load()
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil { // idle: the restarts begin
		t.Fatal(err)
	}
	inLoad := 0
	for tries := 0; inLoad < DefaultCrashLimit; tries++ {
		if tries == 2*DefaultCrashLimit {
			t.Fatalf("%d of %d kills landed while a host loaded", inLoad, tries)
		}
		restarts := m.Stats().HostRestarts
		q := untilLoading(t, h, p)
		if q == nil { // loaded before it could be caught: kill it idle
			q = h.live.Load()
		}
		if err := syscall.Kill(q.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-q.Done()
		// The kill landed in the load when no restart completed before
		// the next process: that load failed.
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if r := h.live.Load(); r != nil && r != q {
				if m.Stats().HostRestarts == restarts {
					inLoad++
				}
				break
			}
			if m.Stats().HostRestarts != restarts {
				break
			}
			if reason := m.hosts.downReason(); reason != "" {
				t.Fatalf("after %d kills in loads: the version gave up: %s", inLoad, reason)
			}
			if time.Now().After(end) {
				t.Fatal("no host started within 30 s of the last one's death")
			}
		}
		p = q
	}
	if reason := m.hosts.downReason(); reason != "" {
		t.Fatalf("after %d kills in loads: the version gave up: %s", inLoad, reason)
	}
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)
}

// A text generator's decoder host killed while no pass runs is replaced
// at once, as a model's are: the next pass neither fails nor waits for a
// restart.
func TestIdleDecoderHostIsReplacedAtOnce(t *testing.T) {
	d := loadHostedDecoder(t)
	dead := d.remote.live.Load()
	if err := syscall.Kill(dead.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, _, restarts := d.health.counts(); restarts == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("no decoder host started again within 30 s of the idle one's death, with no pass run")
		}
	}
	if p := d.remote.live.Load(); p == nil || p == dead || p.Exited() {
		t.Fatalf("the host in place after the restart: %v (the dead one %v)", p, dead)
	}
	f := &Forward{Batch: 1, News: 1, Past: 1, IDs: []int64{1001}, Pos: []int64{0}, Mask: []int64{0, 1}}
	for range 2 * d.Layers {
		f.KV = append(f.KV, make([]float32, d.Heads*d.HeadDim))
	}
	if _, err := d.Run(f); err != nil {
		t.Fatalf("the pass after the restart: %v", err)
	}
	if crashes, _, _ := d.health.counts(); crashes != 1 {
		t.Errorf("%d crashes counted, want 1", crashes)
	}
}

// When one instance's crashes make a version give up, it says so once,
// and its other instances' hosts stop too: the version serves nothing until it is
// loaded again, and they held their sessions' memory for nothing.
func TestGivingUpStopsTheOtherInstancesHosts(t *testing.T) {
	var log lockedBuffer
	m := loadFault(t, "int-div", Config{Instances: 2}, LoadOptions{Isolation: IsolationProcess,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	for range DefaultCrashLimit {
		_, err := divide(m, healthyA, poisonB)
		wantHostDied(t, err, "SIGFPE")
	}
	if m.hosts.downReason() == "" {
		t.Fatal("the version still serves after the crash limit")
	}
	if text := log.String(); strings.Count(text, "unavailable until it is loaded again") != 1 {
		t.Errorf("the log, want the version's giving up said once:\n%s", text)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		running := 0
		for _, in := range m.instances {
			if p := in.(*hostedInstance).live.Load(); p != nil && !p.Exited() {
				running++
			}
		}
		if running == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d hosts of the version that gave up still run after 30 s", running)
		}
	}
}

// A host still loading a restart when another instance's crashes make
// the version give up is stopped then, not left to finish its load (up to
// --model-load-timeout) first. Its load is frozen with SIGSTOP so that it
// cannot finish first; one that answered in the microseconds before the
// stop is tried again with a fresh version.
func TestGivingUpStopsAHostStillLoading(t *testing.T) {
	untilFrozenInTime(t, giveUpDuringLoad)
}

// untilFrozenInTime runs try, a test on a load frozen with SIGSTOP, until
// it caught a load before it finished (try reports false when the load
// had answered in the microseconds before the stop), at most 3 times.
func untilFrozenInTime(t *testing.T, try func(*testing.T) bool) {
	t.Helper()
	for range 3 {
		if try(t) {
			return
		}
	}
	t.Fatal("each of 3 loads finished before it was stopped")
}

// giveUpDuringLoad is one try of TestGivingUpStopsAHostStillLoading:
// false when the load it froze had already finished.
func giveUpDuringLoad(t *testing.T) bool {
	m := loadFault(t, "int-div", Config{Instances: 2}, LoadOptions{Isolation: IsolationProcess})
	defer m.Close()
	h := m.instances[1].(*hostedInstance).host
	loading := freezeALoad(t, h)
	for range DefaultCrashLimit { // on instance 0: instance 1's worker is in its restart
		_, err := divide(m, healthyA, poisonB)
		wantHostDied(t, err, "SIGFPE")
	}
	if m.hosts.downReason() == "" {
		t.Fatal("the version still serves after the crash limit")
	}
	select {
	case <-loading.Done():
	case <-time.After(10 * time.Second):
		if h.doing() != hostLoading {
			return false // it had answered before it stopped
		}
		t.Fatal("the host loading a restart still runs 10 s after the version gave up")
	}
	return true
}

// freezeALoad kills h's host until a replacement is caught loading, and
// freezes that one's load with SIGSTOP (it stays killable).
func freezeALoad(t *testing.T, h *host) *modelhost.Process {
	t.Helper()
	for kills, old := 0, h.live.Load(); ; kills, old = kills+1, h.live.Load() {
		if kills == 10 {
			t.Fatal("no host caught loading in 10 restarts")
		}
		if err := syscall.Kill(old.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-old.Done()
		if loading := untilLoading(t, h, old); loading != nil {
			if err := syscall.Kill(loading.Pid(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			return loading
		}
	}
}

// Closing a version while a replacement host loads stops that host
// instead of waiting out its load (up to --model-load-timeout), and says
// so: nothing was running a batch. The load is frozen with SIGSTOP, so
// that it cannot finish first; one that answered in the microseconds
// before the stop is tried again with a fresh version.
func TestCloseStopsAHostStillLoading(t *testing.T) {
	defer func(g time.Duration) { closeGrace = g }(closeGrace)
	closeGrace = 100 * time.Millisecond
	untilFrozenInTime(t, closeDuringLoad)
}

// closeDuringLoad is one try of TestCloseStopsAHostStillLoading: false
// when the load it froze had already finished.
func closeDuringLoad(t *testing.T) bool {
	var log lockedBuffer
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	loading := freezeALoad(t, m.instances[0].(*hostedInstance).host)
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited on a host's load")
	}
	if m.Stats().HostRestarts != 0 {
		return false // it had answered before it stopped
	}
	if !loading.Exited() {
		t.Error("the loading host still runs after Close")
	}
	text := log.String()
	if strings.Contains(text, "running batches") || !strings.Contains(text, "loading at close") {
		t.Errorf("close's log, want a host still loading and no batch named:\n%s", text)
	}
	return true
}
