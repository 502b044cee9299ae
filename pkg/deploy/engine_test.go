package deploy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// memServer is a Source over versions held in memory, for the engine's
// own tests: readiness, digests and counters set by the test, and a
// traffic policy applied as the server applies it (refused when it weighs
// a version that is not ready).
type memServer struct {
	mu       sync.Mutex
	ready    map[int64]bool
	digest   map[int64]string
	counts   map[int64]VersionMetrics
	boot     string
	policy   *Policy
	failNext bool // the next SetPolicy fails, as a state folder that cannot be written
}

func newMemServer() *memServer {
	return &memServer{ready: map[int64]bool{1: true, 2: true}, digest: map[int64]string{1: "sha256:1", 2: "sha256:2"},
		counts: map[int64]VersionMetrics{}, boot: "boot-0"}
}

func (m *memServer) Metrics(_ string, v int64) (VersionMetrics, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[v]
	c.Boot = m.boot
	return c, nil
}

func (m *memServer) Drift(string, int64) DriftMetrics { return DriftMetrics{} }

func (m *memServer) VersionReady(_ string, v int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready[v]
}

func (m *memServer) Smoke(string, int64) error { return nil }

func (m *memServer) SetPolicy(_ string, p Policy, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext {
		m.failNext = false
		return fmt.Errorf("traffic policy not saved: disk full")
	}
	if err := p.Validate(func(v int64) bool { return m.ready[v] }); err != nil {
		return err
	}
	m.policy = &p
	return nil
}

func (m *memServer) CurrentPolicy(string) (Policy, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.policy == nil {
		return Policy{}, false
	}
	return *m.policy, true
}

func (m *memServer) Digest(_ string, v int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready[v] {
		return "", fmt.Errorf("version %d is not ready", v)
	}
	return m.digest[v], nil
}

// serve records n requests to version v, errs of them failed.
func (m *memServer) serve(v int64, n, errs float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[v]
	c.Requests += n
	c.Errors += errs
	m.counts[v] = c
}

// restart is a new process: counters from zero under a new identity.
func (m *memServer) restart(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts = map[int64]VersionMetrics{}
	m.boot = fmt.Sprintf("boot-%d", i)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSpec is a canary the test's analyses move on: its interval is long
// enough that no driver ever analyses by itself.
func testSpec() Spec {
	return Spec{Model: "m", Stable: 1, Candidate: 2, Steps: []float64{25, 50, 100}, Interval: Duration(time.Hour),
		Analysis: Analysis{MinRequests: 10, FailureLimit: 2, InconclusiveLimit: 2}}
}

// sameTraffic reports whether two policies send the same shares to the
// same versions (a weight of 0 is no weight) with the same shadow.
func sameTraffic(a, b Policy) bool {
	share := func(p Policy) map[int64]float64 {
		out, total := map[int64]float64{}, 0.0
		for _, w := range p.Weights {
			total += w
		}
		for v, w := range p.Weights {
			if w > 0 {
				out[v] = w / total
			}
		}
		return out
	}
	return maps.Equal(share(a), share(b)) && (a.Shadow == nil) == (b.Shadow == nil)
}

// Random interleavings of commands, analysis verdicts (some judged on a
// state a command has since changed, as a race would), replaced
// candidates, versions going unready, failed traffic changes, restarts
// and kills between saving a transition and applying its traffic never
// end with traffic other than the rollout's state calls for: never on a
// version the state says is not serving.
func TestRolloutStateMachineProperty(t *testing.T) {
	runs, ops := 100, 60
	if testing.Short() {
		runs = 30
	}
	for run := range runs {
		seed := uint64(run)
		r := rand.New(rand.NewPCG(seed, 26))
		src, store := newMemServer(), &Store{Dir: t.TempDir()}
		var crash bool
		open := func() *Engine {
			e, err := NewEngine(src, store, quiet())
			if err != nil {
				t.Fatal(err)
			}
			e.crashAfterSave = func() bool { return crash }
			return e
		}
		e := open()
		var stale []State // snapshots an analysis may judge late
		var trail []string
		for op := range ops {
			var name string
			switch k := r.IntN(13); k {
			case 0, 1:
				name = "start"
				sp := testSpec()
				if r.IntN(2) == 0 {
					sp.OnCandidateChange = OnChangeRestart
				}
				_, _ = e.Start(sp, "test")
			case 2:
				name = "promote"
				_, _ = e.Promote("m", "test")
			case 3:
				name = "abort"
				_, _ = e.Abort("m", "test")
			case 4:
				name = "undo"
				_, _ = e.Undo("m", "test")
			case 5, 6, 7, 8:
				verdict := []string{Pass, Pass, Fail, Inconclusive}[r.IntN(4)]
				name = "analysis " + verdict
				switch verdict {
				case Pass:
					src.serve(2, 20, 0)
				case Fail:
					src.serve(2, 20, 10)
				}
				st, err := e.Get("m")
				if err != nil {
					continue
				}
				late := len(stale) > 0 && r.IntN(3) == 0
				if late {
					st = stale[r.IntN(len(stale))]
					name += " (judged late)"
				}
				before := mustGet(e)
				e.analyse("m", st)
				if after := mustGet(e); late && st.Revision != before.Revision && after.Revision != before.Revision {
					t.Fatalf("seed %d after %s: a verdict judged at revision %d changed the rollout at revision %d:\n%s\n%s",
						seed, strings.Join(append(trail, name), ", "), st.Revision, before.Revision, historyKinds(before), historyKinds(after))
				}
			case 9:
				name = "replace candidate"
				src.mu.Lock()
				src.digest[2] = fmt.Sprintf("sha256:2.%d", op)
				src.mu.Unlock()
			case 10:
				v := int64(1 + r.IntN(2))
				name = fmt.Sprintf("toggle version %d", v)
				src.mu.Lock()
				src.ready[v] = !src.ready[v]
				src.mu.Unlock()
			case 11:
				name = "fail next traffic change"
				src.mu.Lock()
				src.failNext = true
				src.mu.Unlock()
			case 12:
				crash = r.IntN(2) == 0
				name = "restart"
				if crash {
					// The next transition is killed after saving.
					name = "kill after save, restart"
					_, _ = e.Abort("m", "test")
					e.analyse("m", mustGet(e))
				}
				e.Close()
				crash = false
				src.restart(op)
				src.mu.Lock()
				src.failNext = false
				src.mu.Unlock()
				e = open()
				stale = nil
			}
			trail = append(trail, name)
			if st, err := e.Get("m"); err == nil {
				stale = append(stale, st)
				got, ok := src.CurrentPolicy("m")
				if !ok || !sameTraffic(got, st.TrafficPolicy()) {
					e.Close()
					t.Fatalf("seed %d after %s: rollout %s at step %d (revision %d) calls for %v, traffic is %v (set: %v)\nhistory %s",
						seed, strings.Join(trail, ", "), st.Phase, st.Step, st.Revision, st.TrafficPolicy().Weights, got.Weights, ok, historyKinds(st))
				}
			} else if _, ok := src.CurrentPolicy("m"); ok {
				t.Fatalf("seed %d after %s: a policy and no rollout", seed, strings.Join(trail, ", "))
			}
		}
		e.Close()
	}
}

func mustGet(e *Engine) State {
	st, _ := e.Get("m")
	return st
}

func historyKinds(st State) string {
	var k []string
	for _, ev := range st.History {
		k = append(k, ev.Kind)
	}
	return strings.Join(k, " ")
}

// An analysis window whose counters began in another process is
// restarted, and says so, instead of judging their difference; the next
// window is judged on the new process's counters alone.
func TestWindowAcrossProcessesIsRestarted(t *testing.T) {
	src := newMemServer()
	e, err := NewEngine(src, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	src.serve(2, 1000, 0) // the earlier process's counters
	if _, err := e.Start(testSpec(), "test"); err != nil {
		t.Fatal(err)
	}
	src.restart(1) // counters from zero, a new identity; the state stayed in memory
	src.serve(2, 100, 29)
	e.analyse("m", mustGet(e))
	st := mustGet(e)
	if st.Phase != Progressing || !strings.HasSuffix(historyKinds(st), WindowRestarted) {
		t.Fatalf("%s: %s", st.Phase, historyKinds(st))
	}
	for range 2 { // two failed analyses: the failure limit
		src.serve(2, 100, 29)
		e.analyse("m", mustGet(e))
	}
	if st := mustGet(e); st.Phase != RolledBack || !strings.Contains(st.History[len(st.History)-1].Reason, "success rate 71.00%") {
		t.Fatalf("%s: %s", st.Phase, historyKinds(st))
	}
}

// A rollout's state that does not hold, from a state file or a server's
// answer, is refused naming what is wrong, never indexed into: a state
// file with no steps once crashed the server at every start, and such an
// answer crashed infer rollout status.
func TestStatesThatDoNotHoldAreRefused(t *testing.T) {
	good := func() State {
		st := State{Spec: Spec{Model: "m", Stable: 1, Candidate: 2}.WithDefaults(), Phase: Progressing}
		st.Spec.Interval = Duration(time.Hour)
		return st
	}
	if err := good().Check(); err != nil {
		t.Fatalf("a state that holds: %v", err)
	}
	noSteps, badStep, badPhase := good(), good(), good()
	noSteps.Spec.Steps = nil
	badStep.Step = -1
	badPhase.Phase = "sideways"
	for _, c := range []struct {
		st   State
		want string
	}{{noSteps, "steps: none"}, {badStep, "step -1"}, {badPhase, `phase "sideways"`}, {State{}, "model: empty"}} {
		if err := c.st.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.st, err, c.want)
		}
	}

	// Saved states: the one that does not hold is skipped; the one that
	// does resumes.
	store := &Store{Dir: t.TempDir()}
	ok := good()
	if err := store.SaveRollout("m", ok); err != nil {
		t.Fatal(err)
	}
	noSteps.Spec.Model = "broken"
	if err := store.SaveRollout("broken", noSteps); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(newMemServer(), store, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Get("broken"); err == nil {
		t.Error("a saved state with no steps was resumed")
	}
	if st, err := e.Get("m"); err != nil || st.Phase != Progressing {
		t.Errorf("the saved state that holds: %+v %v, want it resumed", st.Phase, err)
	}

	// A server's answer.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }))
	defer srv.Close()
	if _, err := (&Client{Base: srv.URL}).Rollout(context.Background(), "m"); err == nil || !strings.Contains(err.Error(), "no rollout state") {
		t.Fatalf("an answer of {}: %v, want an error saying it is no rollout state", err)
	}
}
