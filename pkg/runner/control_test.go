package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gopkg.in/yaml.v3"
)

// manyModels writes n copies of the bundled mlp as models m1..mn, version
// 1, with config (if any) as each model's config.yaml.
func manyModels(t *testing.T, n int, config string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 1; i <= n; i++ {
		copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, fmt.Sprintf("m%d", i), "1", ModelFile))
		if config != "" {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("m%d", i), ConfigFile), []byte(config))
		}
	}
	return dir
}

// versionSize is what one version of dir's m1 measures loaded.
func versionSize(t *testing.T, dir string) int64 {
	t.Helper()
	probe, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, Warm: []string{"m1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	_, size := loadedNow(probe)
	return size
}

// events records a repository's control events.
type events struct {
	mu  sync.Mutex
	all []ControlEvent
}

func (e *events) observe(ev ControlEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) count(kind, reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Kind == kind && (reason == "" || ev.Reason == reason) {
			n++
		}
	}
	return n
}

// loadedNow returns the names of the loaded versions and their summed bytes.
func loadedNow(r *Repository) ([]string, int64) {
	var names []string
	var total int64
	for _, s := range r.Index() {
		if s.State == StateReady {
			names = append(names, s.Name)
			total += s.Bytes
		}
	}
	slices.Sort(names)
	return names, total
}

// infer sends one request to model name through Acquire, holding the
// version only for the request.
func inferOn(t *testing.T, r *Repository, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := r.Acquire(ctx, name, 0)
	if err != nil {
		t.Fatalf("acquire %s: %v", name, err)
	}
	if _, err := m.Infer(ctx, randomRequest(m, 1, 0, rand.New(rand.NewPCG(1, 2)))); err != nil {
		t.Fatalf("infer %s: %v", name, err)
	}
}

// Six versions under a budget that holds two, each measured from its
// model host's resident memory: requests load them on demand, the least
// recently used idle version makes room, and the loaded bytes never pass
// the budget.
func TestOnDemandEvictsLeastRecentlyUsedWithinBudget(t *testing.T) {
	dir := manyModels(t, 6, "")
	// One version's size, measured the same way.
	probe, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand}})
	if err != nil {
		t.Fatal(err)
	}
	inferOn(t, probe, "m1")
	_, size := loadedNow(probe)
	probe.Close()
	if size < 1<<20 {
		t.Fatalf("a model host measured %d bytes: want its resident memory, megabytes", size)
	}
	budget := size * 5 / 2
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, MemoryBudget: budget}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var ev events
	repo.Observe(ev.observe)
	if names, _ := loadedNow(repo); len(names) != 0 {
		t.Fatalf("on-demand mode loaded %v at start, want nothing", names)
	}
	for i := 1; i <= 6; i++ {
		inferOn(t, repo, fmt.Sprintf("m%d", i))
		names, bytes := loadedNow(repo)
		if len(names) > 2 || bytes > budget {
			t.Fatalf("after m%d: loaded %v, %s of a %s budget", i, names, FormatBytes(bytes), FormatBytes(budget))
		}
	}
	inferOn(t, repo, "m5") // m6 is now the least recently used
	inferOn(t, repo, "m1")
	if names, _ := loadedNow(repo); !slices.Equal(names, []string{"m1", "m5"}) {
		t.Errorf("loaded %v, want [m1 m5]: m6 was the least recently used", names)
	}
	if n := ev.count(EventUnload, ReasonBudget); n != 5 {
		t.Errorf("%d evictions, want 5 (m1..m4, then m6)", n)
	}
	if n := ev.count(EventLoad, ReasonOnDemand); n != 7 {
		t.Errorf("%d loads on demand, want 7", n)
	}
	for _, s := range repo.Index() {
		if s.State != StateReady && (!s.OnDemand || !strings.Contains(s.Reason, "unloaded")) {
			t.Errorf("%s: %s %q, want unloaded, loading on demand", s.Name, s.State, s.Reason)
		}
	}
}

// A wave of first requests to versions never loaded, at a fresh start,
// stays within the budget: until one load has been measured, loads run
// one at a time, so the rest are estimated at what a version took, not at
// their files' sizes alone (six cold loads once all ran together, each
// estimated at under a megabyte, to several times the budget).
func TestOnDemandColdWaveStaysWithinBudget(t *testing.T) {
	dir := manyModels(t, 6, "")
	size := versionSize(t, dir)
	budget := size * 5 / 2
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, MemoryBudget: budget, BudgetWait: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	hold, release := context.WithCancel(context.Background())
	defer release() // every lease is held to the end: nothing can be evicted
	var wg sync.WaitGroup
	var loaded atomic.Int32
	for i := 1; i <= 6; i++ {
		wg.Go(func() {
			if _, err := repo.Acquire(hold, fmt.Sprintf("m%d", i), 0); err == nil {
				loaded.Add(1)
			} else if !errors.Is(err, ErrMemoryBudget) {
				t.Errorf("m%d: %v, want a load or ErrMemoryBudget", i, err)
			}
		})
	}
	wg.Wait()
	names, bytes := loadedNow(repo)
	if len(names) > 2 || bytes > budget || loaded.Load() != int32(len(names)) {
		t.Fatalf("six cold first requests at once: loaded %v (%d acquired), %s of a %s budget; want at most 2 within it",
			names, loaded.Load(), FormatBytes(bytes), FormatBytes(budget))
	}
}

// When every loaded version is in use, a load that does not fit is
// refused with ErrMemoryBudget and a retry hint, and succeeds once a
// version is free.
func TestOnDemandRefusesWhenNothingCanBeEvicted(t *testing.T) {
	dir := manyModels(t, 3, "")
	size := versionSize(t, dir)

	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, MemoryBudget: size * 5 / 2, BudgetWait: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	hold1, release1 := context.WithCancel(context.Background())
	defer release1()
	hold2, release2 := context.WithCancel(context.Background())
	defer release2()
	for name, ctx := range map[string]context.Context{"m1": hold1, "m2": hold2} {
		if _, err := repo.Acquire(ctx, name, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, err = repo.Acquire(context.Background(), "m3", 0)
	var be *BudgetError
	if !errors.Is(err, ErrMemoryBudget) || !errors.As(err, &be) || be.RetryAfter <= 0 {
		t.Fatalf("third version with two held: %v, want ErrMemoryBudget with a retry hint", err)
	}
	if !strings.Contains(err.Error(), `"m3"`) {
		t.Errorf("error %q does not name the model", err)
	}
	release1()
	inferOn(t, repo, "m3") // m1's lease ends with its context: it makes room
	if names, _ := loadedNow(repo); !slices.Equal(names, []string{"m2", "m3"}) {
		t.Errorf("loaded %v, want [m2 m3]", names)
	}
}

// Concurrent first requests share one load.
func TestOnDemandConcurrentFirstRequestsShareOneLoad(t *testing.T) {
	repo, err := Open(manyModels(t, 1, "isolation: none\n"), LoadOptions{Control: Control{Mode: ControlOnDemand}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var ev events
	repo.Observe(ev.observe)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { inferOn(t, repo, "m1") })
	}
	wg.Wait()
	if n := ev.count(EventLoad, ""); n != 1 {
		t.Errorf("%d loads for 8 concurrent first requests, want 1", n)
	}
	if n := ev.count(EventWait, ""); n == 0 || n > 8 {
		t.Errorf("%d first-request waits recorded, want 1 to 8", n)
	}
}

// An idle version unloads after its keep_alive; a pinned one (-1) stays;
// the unloaded one loads again at its next request.
func TestOnDemandKeepAlive(t *testing.T) {
	dir := manyModels(t, 2, "isolation: none\n")
	writeFile(t, filepath.Join(dir, "m2", ConfigFile), []byte("isolation: none\nkeep_alive: -1\n"))
	synctest.Test(t, func(t *testing.T) {
		repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, KeepAlive: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		inferOn(t, repo, "m1")
		inferOn(t, repo, "m2")
		time.Sleep(59 * time.Second)
		if names, _ := loadedNow(repo); len(names) != 2 {
			t.Fatalf("before keep_alive: loaded %v, want both", names)
		}
		time.Sleep(2 * time.Second)
		if names, _ := loadedNow(repo); !slices.Equal(names, []string{"m2"}) {
			t.Fatalf("past keep_alive: loaded %v, want only the pinned m2", names)
		}
		inferOn(t, repo, "m1")
		if names, _ := loadedNow(repo); len(names) != 2 {
			t.Fatalf("after a new request: loaded %v, want both", names)
		}
	})
}

// Poll mode: a version copied into the repository serves within two poll
// intervals, with no request failing meanwhile; a changed file that does
// not load leaves the old version serving; a removed version unloads.
func TestPollLoadsNewVersionsWithoutFailedRequests(t *testing.T) {
	dir := manyModels(t, 1, "isolation: none\n")
	synctest.Test(t, func(t *testing.T) {
		repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlPoll, PollInterval: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		if err := repo.Load("m1"); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("admin load in poll mode: %v, want refused", err)
		}
		ctx, stop := context.WithCancel(context.Background())
		var failed []error
		var sent int
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				rctx, cancel := context.WithCancel(ctx)
				m, err := repo.Acquire(rctx, "m1", 0)
				if err == nil {
					_, err = m.Infer(rctx, randomRequest(m, 1, 0, rand.New(rand.NewPCG(1, 2))))
				}
				cancel()
				if err != nil && ctx.Err() == nil {
					failed = append(failed, err)
				}
				sent++
				time.Sleep(50 * time.Millisecond)
			}
		}()
		copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "m1", "2", ModelFile))
		time.Sleep(2 * time.Second)
		m, err := repo.Model("m1", 0)
		if err != nil || m.Metadata().Version != 2 {
			t.Fatalf("two poll intervals after version 2 arrived: %v, %v; want version 2 serving", m, err)
		}
		writeFile(t, filepath.Join(dir, "m1", "2", ModelFile), []byte("not a model"))
		time.Sleep(2 * time.Second)
		if m2, err := repo.Model("m1", 2); err != nil || m2 != m {
			t.Fatalf("after a broken change: %v, want the old version 2 still serving", err)
		}
		if err := os.RemoveAll(filepath.Join(dir, "m1", "2")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if _, err := repo.Model("m1", 2); !errors.Is(err, ErrModelNotFound) {
			t.Errorf("removed version 2: %v, want not found", err)
		}
		if m.Closed() != true {
			t.Errorf("removed version 2 is not closed")
		}
		stop()
		<-done
		if len(failed) > 0 || sent < 50 {
			t.Errorf("%d of %d requests failed during the switches: %v", len(failed), sent, failed)
		}
	})
}

func TestLRUVictims(t *testing.T) {
	c := func(name string, bytes, used int64, held bool) candidate {
		return candidate{name: name, bytes: bytes, lastUsed: used, held: held}
	}
	cands := []candidate{c("a", 10, 3, false), c("b", 10, 1, false), c("c", 10, 2, true), c("d", 30, 4, false)}
	for _, tc := range []struct {
		used, need, budget int64
		want               []string
		ok                 bool
	}{
		{60, 10, 100, nil, true},                // fits
		{60, 50, 100, []string{"b"}, true},      // the least recently used idle one
		{60, 60, 100, []string{"b", "a"}, true}, // c is held: skipped
		{60, 90, 100, []string{"b", "a", "d"}, true},
		{60, 100, 100, nil, false}, // even every idle one is not enough: none
	} {
		got, ok := lruVictims(cands, tc.used, tc.need, tc.budget)
		var names []string
		for _, g := range got {
			names = append(names, g.name)
		}
		if ok != tc.ok || !slices.Equal(names, tc.want) {
			t.Errorf("used %d need %d budget %d: %v %v, want %v %v", tc.used, tc.need, tc.budget, names, ok, tc.want, tc.ok)
		}
	}
}

func TestStatusRSS(t *testing.T) {
	n, err := statusRSS([]byte("Name:\tinfer\nVmPeak:\t  100 kB\nVmRSS:\t   2048 kB\nThreads: 4\n"))
	if err != nil || n != 2048<<10 {
		t.Errorf("statusRSS = %d, %v; want 2 MiB", n, err)
	}
	if _, err := statusRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmRSS line: want an error")
	}
	self, _, err := (&Repository{ctl: newControl(Control{})}).ProcessRSS()
	if err != nil || self < 1<<20 {
		t.Errorf("this process's RSS = %d, %v", self, err)
	}
}

func TestKeepAliveYAML(t *testing.T) {
	for in, want := range map[string]time.Duration{"-1": -1, "300": 5 * time.Minute, "10m": 10 * time.Minute, "0": 0} {
		var k KeepAlive
		if err := yaml.Unmarshal([]byte(in), &k); err != nil || time.Duration(k) != want {
			t.Errorf("keep_alive %s = %v, %v; want %v", in, time.Duration(k), err, want)
		}
	}
	var k KeepAlive
	if err := yaml.Unmarshal([]byte("soon"), &k); err == nil || !strings.Contains(err.Error(), "keep_alive") {
		t.Errorf("keep_alive soon: %v, want an error naming keep_alive", err)
	}
	if _, err := ParseControlMode("lazy"); err == nil || !strings.Contains(err.Error(), "on-demand") {
		t.Errorf("ParseControlMode(lazy): %v, want the modes listed", err)
	}
}

// An unload through the admin API in explicit mode leaves each version in
// the index under its own number, unavailable, and reports the unload.
func TestExplicitUnloadKeepsTheVersionNumbers(t *testing.T) {
	var ev events
	repo, err := Open(manyModels(t, 1, ""), LoadOptions{Isolation: IsolationNone, Control: Control{Mode: ControlExplicit}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close)
	repo.Observe(ev.observe)
	if err := repo.Unload("m1"); err != nil {
		t.Fatal(err)
	}
	idx := repo.Index()
	if len(idx) != 1 || idx[0].Version != 1 || idx[0].State != StateUnavailable || !strings.Contains(idx[0].Reason, "unloaded") {
		t.Fatalf("index after the unload: %+v, want m1 version 1 unavailable, unloaded", idx)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.all) != 1 || ev.all[0].Kind != EventUnload || ev.all[0].Version != 1 || ev.all[0].Reason != ReasonAdmin {
		t.Fatalf("events %+v, want one admin unload of version 1", ev.all)
	}
}

// An on-demand load that fails (a model file that does not load; a host
// killed while it loads) leaves the version unloaded, not unavailable for
// good: requests get the failure and when to try again, with no other
// load until the back-off has passed, and the next request after it loads
// the version again.
func TestOnDemandRetriesAFailedLoadAfterTheBackOff(t *testing.T) {
	dir := manyModels(t, 1, "isolation: none\n")
	file := filepath.Join(dir, "m1", "1", ModelFile)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, []byte("not an ONNX model"))
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	ctx := context.Background()
	var failed *LoadError
	_, err = repo.Acquire(ctx, "m1", 0)
	if !errors.As(err, &failed) || !errors.Is(err, ErrModelNotReady) || failed.Failures != 1 || time.Until(failed.RetryAt) <= 0 {
		t.Fatalf("the first load: %v, want a *LoadError wrapping ErrModelNotReady, one failure, a retry time ahead", err)
	}
	// Fixed, but within the back-off: not loaded (a load would succeed).
	writeFile(t, file, good)
	if _, err := repo.Acquire(ctx, "m1", 0); !errors.As(err, &failed) || failed.Failures != 1 {
		t.Fatalf("within the back-off: %v, want the first load's error", err)
	}
	repo.mu.Lock()
	repo.models["m1"][1].retryAt = time.Now() // the back-off has passed
	repo.mu.Unlock()
	inferOn(t, repo, "m1")
}

// The back-off doubles from LoadRetryMin with each failure in a row, up
// to LoadRetryMax.
func TestLoadRetryBackOff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := loadRetry(failures); got != want {
			t.Errorf("after %d failures: %v, want %v", failures, got, want)
		}
	}
}

// A request waits at most LoadWait for an on-demand load, and then gets a
// *LoadWaitError (503, Retry-After 1) while the load goes on: the next
// request finds it loading or loaded, and there is one load in all.
func TestOnDemandWaitIsBoundedButTheLoadGoesOn(t *testing.T) {
	repo, err := Open(manyModels(t, 1, "isolation: none\n"), LoadOptions{Control: Control{Mode: ControlOnDemand, LoadWait: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var ev events
	repo.Observe(ev.observe)
	var waited *LoadWaitError
	if _, err := repo.Acquire(context.Background(), "m1", 0); !errors.As(err, &waited) || !errors.Is(err, ErrModelNotReady) {
		t.Fatalf("a wait bounded at 1 ns: %v, want a *LoadWaitError wrapping ErrModelNotReady", err)
	}
	repo.ctl.LoadWait = 0 // no other request waits now
	inferOn(t, repo, "m1")
	if n := ev.count(EventLoad, ""); n != 1 {
		t.Errorf("%d loads, want the one the first request started", n)
	}
}

// A model named to load at start that the repository does not hold is an
// error at Open, naming it and what the repository holds: a typo in
// --load-model must not start a server that silently keeps nothing warm.
func TestWarmModelMustExist(t *testing.T) {
	repo, err := Open(manyModels(t, 2, ""), LoadOptions{Control: Control{Mode: ControlOnDemand, Warm: []string{"m1", "nosuch"}}})
	if repo != nil || !errors.Is(err, ErrModelNotFound) || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "m1, m2") {
		t.Fatalf("Open: %v, %v; want ErrModelNotFound naming nosuch and the models held", repo, err)
	}
}

// Warm models that alone take more than the memory budget are loaded, and
// the server says at start that every other load will be refused.
func TestWarmModelsOverTheBudgetAreReported(t *testing.T) {
	var log bytes.Buffer
	repo, err := Open(manyModels(t, 2, "isolation: none\n"), LoadOptions{Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Control: Control{Mode: ControlOnDemand, Warm: []string{"m1"}, MemoryBudget: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if names, _ := loadedNow(repo); !slices.Equal(names, []string{"m1"}) {
		t.Errorf("loaded %v, want the warm m1", names)
	}
	if !strings.Contains(log.String(), "the models kept warm take more than the memory budget") {
		t.Errorf("no warning at start; the log:\n%s", log.String())
	}
}

// In on-demand mode a load that fails at start (a warm model) or through
// the admin API is retried on demand after the back-off, as any failed
// load is, instead of leaving the version unavailable for good.
func TestOnDemandRetriesFailedWarmAndAdminLoads(t *testing.T) {
	dir := manyModels(t, 2, "isolation: none\n")
	files := map[string][]byte{}
	for _, name := range []string{"m1", "m2"} {
		file := filepath.Join(dir, name, "1", ModelFile)
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		files[file] = good
		writeFile(t, file, []byte("not an ONNX model"))
	}
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, Warm: []string{"m1"}}})
	if repo == nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var failed *LoadError
	if err := repo.Load("m2"); err == nil {
		t.Fatal("the admin load of a broken file succeeded")
	}
	for _, name := range []string{"m1", "m2"} {
		if _, err := repo.Acquire(context.Background(), name, 0); !errors.As(err, &failed) {
			t.Fatalf("%s within the back-off: %v, want a *LoadError", name, err)
		}
	}
	for file, good := range files {
		writeFile(t, file, good)
	}
	repo.mu.Lock()
	for _, name := range []string{"m1", "m2"} {
		repo.models[name][1].retryAt = time.Now() // the back-off has passed
	}
	repo.mu.Unlock()
	inferOn(t, repo, "m1")
	inferOn(t, repo, "m2")
}

// When the versions kept loaded (warm) leave no room for another, a load
// is refused at once, with no retry hint: no wait would make room.
func TestOnDemandRefusesAtOnceWhenPinnedVersionsFillTheBudget(t *testing.T) {
	dir := manyModels(t, 3, "") // hosts: each measured by its own memory
	size := versionSize(t, dir)
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand, Warm: []string{"m1", "m2"}, MemoryBudget: size*2 + size/10, BudgetWait: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	start := time.Now()
	_, err = repo.Acquire(context.Background(), "m3", 0)
	var be *BudgetError
	if !errors.As(err, &be) || be.RetryAfter != 0 || !strings.Contains(err.Error(), "kept loaded") {
		t.Fatalf("m3 beside two warm versions: %v, want a *BudgetError naming the pinned versions, with no retry hint", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("refused after %v: it waited for room no wait could make", waited)
	}
}

// WarmAll ("*", as Triton's --load-model=*) keeps every model warm.
func TestWarmAllLoadsEveryModel(t *testing.T) {
	repo, err := Open(manyModels(t, 2, "isolation: none\n"), LoadOptions{Control: Control{Mode: ControlOnDemand, Warm: []string{WarmAll}}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if names, _ := loadedNow(repo); !slices.Equal(names, []string{"m1", "m2"}) {
		t.Errorf("loaded %v, want every model", names)
	}
}

// A version loaded on demand has its content digest, the same at every
// load of the same files: rollouts compare it to notice a changed
// candidate.
func TestOnDemandVersionsHaveTheirDigest(t *testing.T) {
	dir := manyModels(t, 1, "")
	repo, err := Open(dir, LoadOptions{Control: Control{Mode: ControlOnDemand}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	inferOn(t, repo, "m1")
	first, err := repo.Digest("m1", 1)
	if err != nil || !strings.HasPrefix(first, "sha256:") {
		t.Fatalf("digest after a load on demand: %q, %v", first, err)
	}
	if err := repo.Unload("m1"); err != nil {
		t.Fatal(err)
	}
	inferOn(t, repo, "m1")
	if again, _ := repo.Digest("m1", 1); again != first {
		t.Fatalf("digest %q after a second load of the same files, %q after the first", again, first)
	}
}

// A version whose on-demand load is in progress is LOADING in the index,
// as Triton's repository index says, not unavailable.
func TestIndexShowsALoadInProgress(t *testing.T) {
	repo, err := Open(manyModels(t, 1, "isolation: none\n"), LoadOptions{Control: Control{Mode: ControlOnDemand}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	state := func() VersionStatus {
		for _, s := range repo.Index() {
			if s.Name == "m1" {
				return s
			}
		}
		t.Fatal("m1 is not in the index")
		return VersionStatus{}
	}
	if s := state(); s.State != StateUnavailable {
		t.Fatalf("before its first request: %+v, want UNAVAILABLE", s)
	}
	repo.mu.Lock()
	v := repo.models["m1"][1]
	v.loading = make(chan struct{}) // a load in progress, as awaitLoad starts one
	repo.mu.Unlock()
	if s := state(); s.State != StateLoading || s.Reason == "" {
		t.Errorf("during its load: %+v, want LOADING", s)
	}
	repo.mu.Lock()
	v.loading = nil
	repo.mu.Unlock()
	inferOn(t, repo, "m1")
	if s := state(); s.State != StateReady {
		t.Errorf("after its first request: %+v, want READY", s)
	}
}

// Poll mode warns of a fault once, not at every poll while it stays: a
// folder whose name is no model's, a model whose config.yaml does not
// read. A model's warning is given again once it read well in between.
func TestPollWarnsOfAFaultOnce(t *testing.T) {
	dir := manyModels(t, 2, "isolation: none\n")
	copyFile(t, filepath.Join(bundled, "mlp", "1", ModelFile), filepath.Join(dir, "bad name!", "1", ModelFile))
	var log bytes.Buffer
	repo, err := Open(dir, LoadOptions{Logger: slog.New(slog.NewTextHandler(&log, nil)), Control: Control{Mode: ControlPoll, PollInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	count := func(what string) int { return strings.Count(log.String(), what) }
	broken, fixed := []byte("isolation: none\nmax_batch_sise: 8\n"), []byte("isolation: none\n")
	writeFile(t, filepath.Join(dir, "m2", ConfigFile), broken)
	for range 3 {
		repo.pollOnce()
	}
	if n := count("model folder skipped"); n != 1 {
		t.Errorf("the misnamed folder: %d warnings after a start and three polls, want 1", n)
	}
	if n := count("model not reread"); n != 1 {
		t.Errorf("the broken config.yaml: %d warnings after three polls, want 1", n)
	}
	writeFile(t, filepath.Join(dir, "m2", ConfigFile), fixed)
	repo.pollOnce()
	writeFile(t, filepath.Join(dir, "m2", ConfigFile), broken)
	repo.pollOnce()
	repo.pollOnce()
	if n := count("model not reread"); n != 2 {
		t.Errorf("broken again after reading well: %d warnings in all, want 2", n)
	}
}
