package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/infer-serving/infer/pkg/modelhost"
	"github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/tensor"
)

// faults is the folder of the fault models, relative to this package.
var faults = filepath.Join("..", "..", "testdata", "faults")

// loadFault loads fault model name (testdata/faults/<name>.onnx).
func loadFault(t testing.TB, name string, cfg Config, opts LoadOptions) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(faults, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(name, 1, data, cfg, opts)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(m.Close)
	return m
}

func int32s(name string, rows int64, v ...int32) tensor.Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return tensor.Tensor{Name: name, DataType: tensor.Int32, Shape: []int64{rows, int64(len(v)) / rows}, Data: b}
}

// divide asks int-div for a / b, one row of four.
func divide(m *Model, a, b []int32) ([]int32, error) {
	resp, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{int32s("a", 1, a...), int32s("b", 1, b...)}})
	if err != nil {
		return nil, err
	}
	out := resp.Outputs[0].Data
	q := make([]int32, len(out)/4)
	for i := range q {
		q[i] = int32(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return q, nil
}

func wantQuotient(t *testing.T, got []int32, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("a healthy request failed: %v", err)
	}
	if want := []int32{4, 3, 2, 1}; len(got) != 4 || got[0] != want[0] || got[3] != want[3] {
		t.Fatalf("quotient %v, want %v", got, want)
	}
}

func wantHostDied(t *testing.T, err error, cause string) {
	t.Helper()
	var died *HostDiedError
	if !errors.As(err, &died) || !strings.Contains(died.Cause, cause) {
		t.Fatalf("err = %v, want the host's death by %s", err, cause)
	}
}

var (
	healthyA, healthyB = []int32{8, 9, 10, 11}, []int32{2, 3, 5, 11}
	poisonB            = []int32{1, 0, 1, 1}
)

// A request whose integer division by zero raises SIGFPE in the runtime
// ends its model host, not the test process: it is answered with the
// signal, and the next request is served by a restarted host.
func TestHostCrashIsAnsweredAndTheHostRestarts(t *testing.T) {
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	if m.Isolation() != IsolationProcess {
		t.Fatalf("isolation %q", m.Isolation())
	}
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)

	_, err = divide(m, healthyA, poisonB)
	wantHostDied(t, err, "SIGFPE")
	if !strings.Contains(err.Error(), `model host of int-div v1 died: SIGFPE`) {
		t.Errorf("error %q does not name the model, version and signal", err)
	}

	got, err = divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)
	if s := m.Stats(); s.HostCrashes != 1 || s.HostRestarts != 1 {
		t.Errorf("crashes %d, restarts %d; want 1 and 1", s.HostCrashes, s.HostRestarts)
	}
}

// A poison request batched with healthy ones kills the host once for the
// batch and once more alone; its neighbours are run again, each alone,
// and answered.
func TestPoisonRequestFailsAloneAndItsBatchIsAnswered(t *testing.T) {
	cfg := Config{MaxBatchSize: intp(5)}
	cfg.DynamicBatching.MaxQueueDelay = Duration(time.Minute) // the batch goes when full
	m := loadFault(t, "int-div", cfg, LoadOptions{Isolation: IsolationProcess})

	errs := make([]error, 5)
	quotients := make([][]int32, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			b := healthyB
			if i == 2 {
				b = poisonB
			}
			quotients[i], errs[i] = divide(m, healthyA, b)
		})
	}
	wg.Wait()
	for i := range 5 {
		if i == 2 {
			wantHostDied(t, errs[i], "SIGFPE")
			continue
		}
		wantQuotient(t, quotients[i], errs[i])
	}
	// Two deaths prove the five ran as one batch first: one for the batch,
	// one for the poison alone.
	if s := m.Stats(); s.HostCrashes != 2 {
		t.Errorf("%d crashes, want 2 (the batch, then the poison alone)", s.HostCrashes)
	}
}

// A version whose hosts crash DefaultCrashLimit times within the window
// gives up: it answers ErrModelNotReady with the reason, and the
// repository reports it UNAVAILABLE, while the other models serve.
func TestCrashLoopLeavesTheVersionUnavailable(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{"int-div": filepath.Join(faults, "int-div.onnx"), "mlp": filepath.Join(bundled, "mlp", "1", ModelFile)} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "1", ModelFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, m := openHosted(t, dir, "int-div")
	for range DefaultCrashLimit {
		if _, err := divide(m, healthyA, poisonB); err == nil {
			t.Fatal("a division by zero succeeded")
		}
	}
	_, err := divide(m, healthyA, healthyB)
	if !errors.Is(err, ErrModelNotReady) || !strings.Contains(err.Error(), "crashed 5 times in a row") {
		t.Fatalf("after %d crashes: err = %v, want ErrModelNotReady naming the crashes", DefaultCrashLimit, err)
	}
	for _, s := range repo.Index() {
		switch {
		case s.Name == "int-div" && (s.State != StateUnavailable || !strings.Contains(s.Reason, "SIGFPE")):
			t.Errorf("int-div: %s %q, want UNAVAILABLE naming SIGFPE", s.State, s.Reason)
		case s.Name == "mlp" && s.State != StateReady:
			t.Errorf("mlp: %s %q", s.State, s.Reason)
		}
	}
	if _, err := repo.Model("int-div", 0); !errors.Is(err, ErrModelNotReady) {
		t.Errorf("repository still hands out int-div: %v", err)
	}
	mlp, err := repo.Model("mlp", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mlp.Infer(context.Background(), &Request{Inputs: SyntheticInputs(mlp.Metadata().Inputs, 1, true)}); err != nil {
		t.Errorf("mlp beside the crashed model: %v", err)
	}
	// Loading it again clears the record.
	if err := repo.Load("int-div"); err != nil {
		t.Fatal(err)
	}
	if m, err = repo.Model("int-div", 0); err != nil {
		t.Fatal(err)
	}
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)
}

// A graph with no inputs is served, in a host and in process: each call
// returns its constants.
func TestModelWithNoInputsIsServed(t *testing.T) {
	for _, iso := range []string{IsolationProcess, IsolationNone} {
		m := loadFault(t, "no-inputs", Config{}, LoadOptions{Isolation: iso})
		resp, err := m.Infer(context.Background(), &Request{})
		if err != nil {
			t.Fatalf("%s: %v", iso, err)
		}
		out := resp.Outputs[0]
		var got []float32
		for i := 0; i < len(out.Data); i += 4 {
			got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(out.Data[i:])))
		}
		if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Errorf("%s: values %v, want [1 2 3]", iso, got)
		}
	}
}

func expandRequest(rows, cols int64) *Request {
	v := make([]byte, 4)
	binary.LittleEndian.PutUint32(v, math.Float32bits(7))
	s := make([]byte, 16)
	binary.LittleEndian.PutUint64(s, uint64(rows))
	binary.LittleEndian.PutUint64(s[8:], uint64(cols))
	return &Request{Inputs: []tensor.Tensor{
		{Name: "value", DataType: tensor.FP32, Shape: []int64{1}, Data: v},
		{Name: "shape", DataType: tensor.Int64, Shape: []int64{2}, Data: s},
	}}
}

// A request that makes the runtime allocate past resources.memory fails
// with the limit named; the host is restarted and serves the next one.
func TestMemoryLimitFailsTheRequestAndRestartsTheHost(t *testing.T) {
	cfg := Config{Resources: Resources{Memory: 256 << 20}}
	m := loadFault(t, "expand", cfg, LoadOptions{Isolation: IsolationProcess})
	_, err := m.Infer(context.Background(), expandRequest(1<<15, 1<<15)) // 4 GiB of FP32
	if err == nil || !strings.Contains(err.Error(), "resources.memory") {
		t.Fatalf("err = %v, want the memory limit named", err)
	}
	resp, err := m.Infer(context.Background(), expandRequest(2, 3))
	if err != nil {
		t.Fatalf("after the memory fault: %v", err)
	}
	if got := resp.Outputs[0].Shape; len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Errorf("shape %v, want [2 3]", got)
	}
	if s := m.Stats(); s.HostMemoryFaults != 1 || s.HostRestarts != 1 {
		t.Errorf("memory faults %d, restarts %d; want 1 and 1", s.HostMemoryFaults, s.HostRestarts)
	}
}

// A model whose load outlasts the load timeout is unavailable with that
// reason, its host is killed, and the repository's other models serve.
func TestLoadTimeoutLeavesTheModelUnavailable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(faults, "slow-load.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = LoadModel("slow-load", 1, data, Config{}, LoadOptions{Isolation: IsolationProcess, LoadTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not load the model within 300ms") {
		t.Fatalf("err = %v, want the load timeout named", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timed-out load took %s", took)
	}
}

// Closing a version ends its hosts: their memory goes back to the system.
func TestCloseEndsTheHosts(t *testing.T) {
	m := loadFault(t, "int-div", Config{Instances: 2}, LoadOptions{Isolation: IsolationProcess})
	var pids []int
	for _, in := range m.instances {
		pids = append(pids, in.(*hostedInstance).proc.Pid())
	}
	m.Close()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("host %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
}

// Loading names the repository does not hold adds nothing to its index:
// what callers try cannot grow the server's state.
func TestLoadingUnknownNamesLeavesTheIndexAlone(t *testing.T) {
	repo, err := Open(filepath.Join(faults, "no-inputs.onnx"), LoadOptions{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	before := len(repo.Index())
	for _, name := range []string{"made-up", "../etc", "a/b", ""} {
		if err := repo.Load(name); err == nil {
			t.Errorf("load %q: no error", name)
		}
	}
	if after := len(repo.Index()); after != before {
		t.Errorf("index grew from %d to %d entries", before, after)
	}
}

// A text generator's decoder runs in a model host too: killed, its death
// is counted once, a pass that reaches it fails naming the signal, and the
// next one runs on a restarted host with the same answer.
func TestDecoderHostDiesAndComesBack(t *testing.T) {
	d := loadHostedDecoder(t)
	f := &Forward{Batch: 1, News: 2, Past: 1, IDs: []int64{1001, 1002}, Pos: []int64{0, 1}, Mask: []int64{0, 1, 1}}
	for range 2 * d.Layers {
		f.KV = append(f.KV, make([]float32, d.Heads*d.HeadDim))
	}
	first, err := d.Run(f)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), first.Logits...)
	if err := syscall.Kill(d.remote.live.Load().Pid(), syscall.SIGKILL); err != nil { // proc is the supervisor's too
		t.Fatal(err)
	}
	// The pass fails naming the signal when it reaches the host before the
	// kernel has reaped it; on a loaded machine the host may be found dead
	// first and restarted before the pass, as an idle host's death is (the
	// next test). Either way the death is counted once.
	if _, err = d.Run(f); err != nil {
		wantHostDied(t, err, "SIGKILL")
	}
	if crashes, _, _ := d.remote.health.counts(); crashes != 1 {
		t.Fatalf("%d crashes counted, want 1", crashes)
	}
	again, err := d.Run(f)
	if err != nil {
		t.Fatalf("after the host's death: %v", err)
	}
	for i := range want {
		if again.Logits[i] != want[i] {
			t.Fatalf("logit %d: %v after the restart, %v before", i, again.Logits[i], want[i])
		}
	}
}

// A host that dies while idle (as the kernel's OOM killer would end it) is
// counted as a crash and replaced at once, before any request comes: the
// next batch neither fails nor waits for a restart, and no request is
// blamed for a death it did not cause.
func TestHostThatDiesIdleIsReplacedAtOnce(t *testing.T) {
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	h := m.instances[0].(*hostedInstance)
	dead := h.live.Load() // h.proc is its worker's
	if err := syscall.Kill(dead.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-dead.Done()
	// A real process starts: a bounded wait for it, not a timing claim.
	for end := time.Now().Add(30 * time.Second); m.Stats().HostRestarts == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no host started again within 30 s of the idle one's death, with no request sent")
		}
	}
	if p := h.live.Load(); p == nil || p == dead || p.Exited() {
		t.Fatalf("the host in place after the restart: %v (the dead one %v)", p, dead)
	}
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)
	if s := m.Stats(); s.HostCrashes != 1 || s.HostRestarts != 1 {
		t.Errorf("crashes %d, restarts %d; want 1 and 1", s.HostCrashes, s.HostRestarts)
	}
}

// Hosts killed from outside while idle (kill -9, the OOM killer), more
// times in a row than the crash limit, never take the version down: each
// is counted and replaced, and the version answers after the last. Such
// kills once took idle versions to UNAVAILABLE for good.
func TestIdleHostsKilledFromOutsideNeverTakeTheVersionDown(t *testing.T) {
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	h := m.instances[0].(*hostedInstance)
	const kills = DefaultCrashLimit + 1
	for i := range kills {
		var p *modelhost.Process
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if p = h.live.Load(); p != nil && !p.Exited() && m.Stats().HostRestarts == int64(i) {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("kill %d: no live host within 30 s", i+1)
			}
		}
		if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
	}
	for end := time.Now().Add(30 * time.Second); m.Stats().HostRestarts < kills; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after %d kills: %d restarts, %+v", kills, m.Stats().HostRestarts, m.Stats())
		}
	}
	got, err := divide(m, healthyA, healthyB)
	wantQuotient(t, got, err)
	if s := m.Stats(); s.HostCrashes != kills {
		t.Errorf("%d crashes counted, want %d", s.HostCrashes, kills)
	}
}

// stallRequest asks the faulty variant to stall its Loop for about
// thousands × 2 µs on this machine.
func stallRequest(thousands float32) *Request {
	x := make([]byte, 16)
	binary.LittleEndian.PutUint32(x[8:], math.Float32bits(thousands))
	return &Request{Inputs: []tensor.Tensor{{Name: "x", DataType: tensor.FP32, Shape: []int64{1, 4}, Data: x}}}
}

func loadFaulty(t *testing.T, cfg Config) *Model {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "faulty.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Warmup.Data = WarmupZero // its marks are ones
	m, err := LoadModel("faulty", 1, data, cfg, LoadOptions{Isolation: IsolationProcess})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// A host that hangs (a Loop of 10^12 iterations) is killed after
// resources.execution_timeout: its batch fails naming the timeout, and
// the next is served by a restarted host.
func TestHungHostIsKilledAfterTheExecutionTimeout(t *testing.T) {
	m := loadFaulty(t, Config{Resources: Resources{ExecutionTimeout: Duration(300 * time.Millisecond)}})
	_, err := m.Infer(context.Background(), stallRequest(1e9))
	if err == nil || !strings.Contains(err.Error(), "resources.execution_timeout 300ms") {
		t.Fatalf("err = %v, want the execution timeout named", err)
	}
	if _, err := m.Infer(context.Background(), stallRequest(0)); err != nil {
		t.Fatalf("after the hung host: %v", err)
	}
}

// Closing a version whose host hangs kills the host after closeGrace
// instead of waiting for it: an unload or a shutdown never hangs, and
// every request is answered.
func TestCloseKillsAHungHost(t *testing.T) {
	defer func(g time.Duration) { closeGrace = g }(closeGrace)
	closeGrace = 200 * time.Millisecond
	m := loadFaulty(t, Config{MaxBatchSize: intp(1)})
	answered := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := m.Infer(context.Background(), stallRequest(1e9))
			answered <- err
		}()
	}
	// One queued means the other is in the only instance's host, hanging.
	for deadline := time.Now().Add(30 * time.Second); m.Stats().QueueLength != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the requests never reached the host")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { m.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited on the hung host")
	}
	for range 2 {
		if err := <-answered; err == nil {
			t.Error("a request was answered with outputs")
		}
	}
}

// Poison requests among good ones each fail alone and never take the
// version down, however many: only crashes in a row do.
func TestPoisonAmongGoodRequestsNeverTakesTheVersionDown(t *testing.T) {
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	for range 2 * DefaultCrashLimit {
		_, err := divide(m, healthyA, poisonB)
		wantHostDied(t, err, "SIGFPE")
		got, err := divide(m, healthyA, healthyB)
		wantQuotient(t, got, err)
	}
	if s := m.Stats(); s.HostCrashes != 2*DefaultCrashLimit || m.Unavailable() != "" {
		t.Errorf("%d crashes, unavailable %q: want %d crashes and the version serving", s.HostCrashes, m.Unavailable(), 2*DefaultCrashLimit)
	}
}

// A model file that declares enormous or overflowing dimensions fails its
// load with a reason; the server's process allocates none of it.
func TestModelDeclaringHugeDimensionsFailsItsLoad(t *testing.T) {
	for _, dims := range [][]onnxgraph.Dim{
		{onnxgraph.Symbolic("batch"), onnxgraph.Fixed(1 << 40)},
		{onnxgraph.Symbolic("batch"), onnxgraph.Fixed(1 << 62), onnxgraph.Fixed(1 << 62)},
	} {
		b := onnxgraph.NewBuilder("huge")
		x := b.Input("x", onnxgraph.Float, dims...)
		b.OpNamed("y", "Identity", []string{x})
		b.Output("y", onnxgraph.Float, dims...)
		before := hostCount(t)
		_, err := LoadModel("huge", 1, (&onnxgraph.Model{Graph: b.Graph}).Encode(), Config{}, LoadOptions{Isolation: IsolationProcess})
		if err == nil || !strings.Contains(err.Error(), `input "x": generated data of shape`) {
			t.Errorf("%v: err = %v, want the warm-up's size refused", dims, err)
		}
		if after := hostCount(t); after != before {
			t.Errorf("%v: %d model hosts before the failed load, %d after", dims, before, after)
		}
	}
}

// hostCount counts this process's children, whichever thread started them.
func hostCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	self, n := strconv.Itoa(os.Getpid()), 0
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid ...
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 1 && f[1] == self {
			n++
		}
	}
	return n
}

// Every thread of a model host, the runtime's included, runs at its
// server's nice value with the short scheduler slice, where the kernel has custom slices (Linux 6.12
// on, which shows se.slice in /proc/PID/sched).
func TestHostThreadsAskForAShortSlice(t *testing.T) {
	if _, err := os.Stat("/proc/self/sched"); err != nil {
		t.Skip("no /proc/PID/sched here")
	}
	sched, err := os.ReadFile("/proc/self/sched")
	if err != nil || !strings.Contains(string(sched), "se.slice") {
		t.Skip("the kernel reports no slice")
	}
	m := loadFault(t, "int-div", Config{}, LoadOptions{Isolation: IsolationProcess})
	pid := m.instances[0].(*hostedInstance).proc.Pid()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/sched", pid))
	if err != nil || len(tasks) < 2 {
		t.Fatalf("host %d threads: %v (%v)", pid, tasks, err)
	}
	want := strconv.FormatInt(HostSlice.Nanoseconds(), 10)
	own := threadNice(t, "/proc/self/stat")
	for _, task := range tasks {
		// Serving at the server's priority, whatever the load ran at.
		if nice := threadNice(t, strings.TrimSuffix(task, "sched")+"stat"); nice != own {
			t.Errorf("%s: nice %d after the load, want the server's %d", task, nice, own)
		}
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "se.slice" && f[2] != want {
				t.Errorf("%s: se.slice %s ns, want %s", task, f[2], want)
			}
		}
	}
}

// threadNice reads a thread's nice value from its /proc stat file.
func threadNice(t *testing.T, stat string) int {
	t.Helper()
	b, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	nice, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatalf("%s: nice %q: %v", stat, f[16], err)
	}
	return nice
}

// A host loads below its server where it may raise its priority again
// after (mayRaise): under SCHED_IDLE, then, once loadIdleFor has passed,
// LoadNice steps below its server; it serves at its server's priority.
// A load that ends before escalating is never raised to LoadNice after.
func TestHostLoadsAtALowerPriority(t *testing.T) {
	own := threadNice(t, "/proc/self/stat")
	if own == 19 {
		t.Skip("this test runs at nice 19: no room to lower it")
	}
	load := min(own+LoadNice, 19)
	defer func(d time.Duration) { loadIdleFor = d }(loadIdleFor)
	loadIdleFor = time.Hour // escalated by hand below
	policy := func() int {
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return int(attr.Policy)
	}
	done := make(chan struct{})
	go func() { // on a thread of its own, which it leaves as it was
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		p, err := lowerForLoad()
		if err != nil {
			t.Error(err)
			return
		}
		if p.lowered != mayRaise(int32(own)) {
			t.Errorf("lowered %v, but may raise the priority again: %v", p.lowered, mayRaise(int32(own)))
		}
		if p.lowered {
			if got := policy(); got != unix.SCHED_IDLE {
				t.Errorf("policy %d while the load starts, want SCHED_IDLE", got)
			}
			p.escalate()
			if got, nice := policy(), threadNice(t, "/proc/thread-self/stat"); got != unix.SCHED_NORMAL || nice != load {
				t.Errorf("policy %d, nice %d after loadIdleFor, want SCHED_NORMAL at %d", got, nice, load)
			}
		} else if loading := threadNice(t, "/proc/thread-self/stat"); loading != own {
			t.Errorf("nice %d while loading, not lowered, from %d", loading, own)
		}
		if err := p.serve(); err != nil {
			t.Error(err)
		}
		p.escalate() // a timer that fires late changes nothing
		if got, serving := policy(), threadNice(t, "/proc/thread-self/stat"); got != unix.SCHED_NORMAL || serving != own {
			t.Errorf("policy %d, nice %d while serving, want SCHED_NORMAL at %d", got, serving, own)
		}
	}()
	<-done
}

// A host starts lowered from its first instruction where its server may
// raise the priority again: the thread that starts it is lowered for the
// start, told the server's nice value to serve at, and raised after.
func TestHostStartsLowered(t *testing.T) {
	own := threadNice(t, "/proc/self/stat")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // so that the thread is the same after
		defer runtime.UnlockOSThread()
		var during int
		var env []string
		err := spawnLowered(func(e []string, reaped func()) error {
			during, env = threadNice(t, "/proc/thread-self/stat"), e
			reaped() // started nothing
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		lowered := own < 19 && mayRaise(int32(own))
		switch {
		case lowered && (during != min(own+LoadNice, 19) || len(env) != 1 || env[0] != envServeNice+"="+strconv.Itoa(own)):
			t.Errorf("started at nice %d with %q, want %d and the server's nice %d", during, env, min(own+LoadNice, 19), own)
		case !lowered && (during != own || env != nil):
			t.Errorf("may not raise again, but started at nice %d with %q", during, env)
		}
		if after := threadNice(t, "/proc/thread-self/stat"); after != own {
			t.Errorf("the starting thread stays at nice %d, want %d", after, own)
		}
	}()
	<-done
}

// A version running in process cannot have its batch stopped: closing it
// returns after closeGrace all the same; the batches are answered when
// they end, and the session is released after them.
func TestCloseInProcessReturnsAfterTheGrace(t *testing.T) {
	defer func(g time.Duration) { closeGrace = g }(closeGrace)
	closeGrace = 200 * time.Millisecond
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "faulty.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel("faulty", 1, data, Config{MaxBatchSize: intp(1), Warmup: Warmup{Data: WarmupZero}}, LoadOptions{Isolation: IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := m.Infer(context.Background(), stallRequest(1000)) // about 2 s each
			answered <- err
		}()
	}
	// One queued means the other runs in the only instance.
	for deadline := time.Now().Add(30 * time.Second); m.Stats().QueueLength != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the requests never reached the instance")
		}
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	m.Close()
	if took := time.Since(began); took > 1200*time.Millisecond {
		t.Fatalf("Close took %v with a 200 ms grace, waiting on the batches in process", took)
	}
	for range 2 {
		if err := <-answered; err != nil {
			t.Errorf("a batch in process: %v, want it answered", err)
		}
	}
}

// A host outlives the thread of the goroutine that loaded its version: the
// kernel's SIGKILL on its parent's death (Pdeathsig) follows the thread
// that started it, and Go ends a thread whose locked goroutine exits. Hosts
// start from the spawner thread, which lives while they do.
func TestHostOutlivesTheThreadThatLoadedIt(t *testing.T) {
	var tid int
	loaded := make(chan *Model)
	held := make(chan struct{}) // a goroutine that locked the main thread waits here: Go never ends that one
	defer close(held)
	var load func()
	load = func() {
		go func() {
			runtime.LockOSThread() // never unlocked: Go ends this thread with the goroutine
			if unix.Gettid() == os.Getpid() {
				load() // on another thread
				<-held
				return
			}
			tid = unix.Gettid()
			loaded <- loadFault(t, "no-inputs", Config{}, LoadOptions{Isolation: IsolationProcess})
		}()
	}
	load()
	m := <-loaded
	// The kernel signals a thread's children as the thread exits, before
	// its entry leaves /proc.
	for start := time.Now(); ; {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the loading thread did not end")
		}
		runtime.Gosched()
	}
	if _, err := m.Infer(context.Background(), &Request{}); err != nil {
		t.Fatalf("after the loading thread ended: %v", err)
	}
}
