package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// The rollout tests run in a synctest bubble: the analysis interval, the
// clients' pace and any injected latency are read on its virtual clock, so
// what the analysis measures is exactly what the test set, however loaded
// the machine. The models are loaded in process and inside the bubble: a
// model host's socket is no durable block, and a worker outside the bubble
// could not answer a request made in it.

// serveInBubble opens the repository at dir in process and serves it,
// inside the calling test's bubble; both close with the test.
func serveInBubble(t *testing.T, dir string, opts Options) *Server {
	t.Helper()
	repo, err := runner.Open(dir, runner.LoadOptions{Isolation: runner.IsolationNone})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(repo, opts)
	if err != nil {
		repo.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); repo.Close() })
	return s
}

// pace is the pause of each of load's clients between its requests.
const pace = 5 * time.Millisecond

// load sends unversioned mlp requests, in process, from a few clients
// until the test ends: the traffic a rollout's analysis reads.
func load(t *testing.T, s *Server) {
	t.Helper()
	t.Cleanup(loadUntil(s))
}

// loadUntil is load until the returned stop is called.
func loadUntil(s *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	h := s.Handler()
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req := httptest.NewRequestWithContext(ctx, "POST", "/v2/models/mlp/infer", bytes.NewReader(body))
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
				h.ServeHTTP(httptest.NewRecorder(), req)
				time.Sleep(pace)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// waitPhase waits, on the bubble's clock, for the rollout to reach one
// of phases; a minute is far more than any of these rollouts takes.
func waitPhase(t *testing.T, s *Server, phases ...string) deploy.State {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.Rollouts().Get("mlp")
		if err == nil {
			for _, p := range phases {
				if st.Phase == p {
					return st
				}
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", " ")
			t.Fatalf("rollout never reached %v:\n%s", phases, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// latencies injects each version's latency into s.
func latencies(t *testing.T, s *Server, by map[int64]time.Duration) {
	t.Helper()
	for v, d := range by {
		if err := s.SetFault("mlp", v, &Fault{Latency: d}); err != nil {
			t.Fatal(err)
		}
	}
}

func kinds(st deploy.State) string {
	var k []string
	for _, e := range st.History {
		k = append(k, e.Kind)
	}
	return strings.Join(k, " ")
}

func spec(steps ...float64) deploy.Spec {
	return deploy.Spec{Stable: 1, Candidate: 2, Steps: steps, Interval: deploy.Duration(400 * time.Millisecond),
		Analysis: deploy.Analysis{MinRequests: 10, MaxP99Ratio: 3}}
}

// Both versions answer in 10ms: every step passes and the candidate is
// promoted. A step of 4s gives each version about 500 requests at 50%,
// more than a p99 needs to be judged (368 at 95% confidence).
func TestCanaryPromotesAGoodVersion(t *testing.T) {
	dir := twoVersions(t)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{AllowFaultInjection: true})
		latencies(t, s, map[int64]time.Duration{1: 10 * time.Millisecond, 2: 10 * time.Millisecond})
		load(t, s)
		sp := spec(50, 100)
		sp.Interval = deploy.Duration(4 * time.Second)
		body, _ := json.Marshal(sp)
		if r := serve(s.AdminHandler(), "POST", "/v2/admin/models/mlp/rollout", body); r.status != 201 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack)
		if st.Phase != deploy.Promoted || strings.Count(kinds(st), "pass") != 2 {
			t.Fatalf("phase %s, history %s", st.Phase, kinds(st))
		}
		if p, _ := s.Policy("mlp"); p.Weights[2] != 1 || len(p.Weights) != 1 {
			t.Fatalf("traffic after promotion %+v", p)
		}
		// Undo: back to the stable version at once.
		if r := serve(s.AdminHandler(), "POST", "/v2/admin/models/mlp/rollout/undo", nil); r.status != 200 {
			t.Fatalf("undo: %d %s", r.status, r.body)
		}
		if p, _ := s.Policy("mlp"); p.Weights[1] != 1 {
			t.Fatalf("traffic after undo %+v", p)
		}
	})
}

func TestCanaryRollsBackAFailingVersion(t *testing.T) {
	dir := twoVersions(t)
	fixed, _ := os.ReadFile(filepath.Join(bundled, "fixed-shape", "1", "model.onnx")) // answers mlp's requests with 400
	os.WriteFile(filepath.Join(dir, "mlp", "2", "model.onnx"), fixed, 0o644)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		load(t, s)
		if _, err := s.Rollouts().Start(withModel(spec(25, 50, 100)), "test"); err != nil {
			t.Fatal(err)
		}
		st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack)
		if st.Phase != deploy.RolledBack || st.Step != 0 || !strings.Contains(st.History[len(st.History)-1].Reason, "success rate") {
			t.Fatalf("phase %s at step %d, history %s: %s", st.Phase, st.Step, kinds(st), st.History[len(st.History)-1].Reason)
		}
		if p, _ := s.Policy("mlp"); p.Weights[1] != 1 || len(p.Weights) != 1 {
			t.Fatalf("traffic after rollback %+v", p)
		}
	})
}

// Version 2 answers in 40ms, version 1 in 10ms: on the bubble's clock
// those are the latencies measured, whatever else the machine is doing,
// and version 2 is rolled back at the first step on its p99.
func TestCanaryRollsBackASlowVersion(t *testing.T) {
	dir := twoVersions(t)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{AllowFaultInjection: true})
		latencies(t, s, map[int64]time.Duration{1: 10 * time.Millisecond, 2: 40 * time.Millisecond})
		load(t, s)
		sp := withModel(spec(50, 100))
		sp.Analysis.MaxP99Ratio, sp.Analysis.MinRequests = 1.5, 30
		sp.Interval = deploy.Duration(time.Second)
		if _, err := s.Rollouts().Start(sp, "test"); err != nil {
			t.Fatal(err)
		}
		st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack)
		last := st.History[len(st.History)-1]
		if st.Phase != deploy.RolledBack || st.Step != 0 || !strings.Contains(last.Reason, "p99") {
			b, _ := json.MarshalIndent(st.History, "", " ")
			t.Fatalf("phase %s at step %d: %s\n%s", st.Phase, st.Step, last.Reason, b)
		}
		t.Log(last.Reason)
	})
}

func TestBlueGreenSwitchesAtOnce(t *testing.T) {
	dir := twoVersions(t)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		load(t, s)
		sp := withModel(spec())
		sp.Strategy = deploy.BlueGreen
		if _, err := s.Rollouts().Start(sp, "test"); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.Policy("mlp"); p.Weights[2] != 1 {
			t.Fatalf("not switched after the smoke requests: %+v", p)
		}
		if st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack); st.Phase != deploy.Promoted {
			t.Fatalf("%s: %s", st.Phase, kinds(st))
		}
	})
}

func TestShadowRolloutNeverServes(t *testing.T) {
	dir := twoVersions(t)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		load(t, s)
		sp := withModel(spec())
		sp.Strategy, sp.ShadowFraction, sp.Analysis.MaxDrift = deploy.Mirror, 0.5, 1e-3
		if _, err := s.Rollouts().Start(sp, "test"); err != nil {
			t.Fatal(err)
		}
		st := waitPhase(t, s, deploy.Completed, deploy.RolledBack)
		if st.Phase != deploy.Completed {
			t.Fatalf("%s: %s", st.Phase, kinds(st))
		}
		var judged map[string]float64
		for _, e := range st.History {
			if e.Kind == deploy.Pass {
				judged = e.Figures
			}
		}
		if strings.Contains(kinds(st), "step") && !strings.Contains(st.History[1].Reason, "mirrors 50% of requests") {
			t.Fatalf("the shadow's step reads %q", st.History[1].Reason)
		}
		if judged["shadow_compared"] < 10 {
			t.Fatalf("pass without comparisons: %v", judged)
		}
		if p, _ := s.Policy("mlp"); p.Weights[1] != 1 || p.Shadow != nil {
			t.Fatalf("traffic after a shadow rollout %+v", p)
		}
	})
}

// A server stopped mid-rollout comes back at the same step, with the same
// weights, and the rollout goes on from there.
func TestRolloutResumesAfterRestart(t *testing.T) {
	dir, state := twoVersions(t), t.TempDir()
	repo := openRepo(t, dir)
	s, err := New(repo, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	sp := withModel(spec(10, 50, 100))
	sp.Interval = deploy.Duration(time.Hour) // it stays at its first step
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	s.Close() // as after a kill: the state on disk is all that is left
	repo.Close()

	repo2 := openRepo(t, dir)
	s2, hs := start(t, repo2, Options{StateDir: state})
	st, err := s2.Rollouts().Get("mlp")
	if err != nil || st.Phase != deploy.Progressing || st.Step != 0 || st.Percent() != 10 {
		t.Fatalf("resumed %+v %v", st, err)
	}
	if p, _ := s2.Policy("mlp"); p.Weights[2] != 10 || p.Weights[1] != 90 {
		t.Fatalf("weights after restart %+v", p)
	}
	if r := call(t, "POST", adminBase(t, s2, hs)+"/v2/admin/models/mlp/rollout/abort", nil, nil); r.status != 200 {
		t.Fatalf("abort: %d %s", r.status, r.body)
	}
	if st, _ := s2.Rollouts().Get("mlp"); st.Phase != deploy.Aborted {
		t.Fatal(st.Phase)
	}
	if r := call(t, "POST", adminBase(t, s2, hs)+"/v2/admin/models/mlp/rollout/promote", nil, nil); r.status != 409 {
		t.Fatalf("promote after abort: %d", r.status)
	}
}

func withModel(s deploy.Spec) deploy.Spec { s.Model = "mlp"; return s }

// Bad rollout requests are answered with the field or the conflict at
// fault, and change nothing.
func TestRolloutRequestErrors(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	s, hs := start(t, repo, Options{})
	url := adminBase(t, s, hs) + "/v2/admin/models/mlp/rollout"
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "", "", 404, `no rollout of model "mlp"`},
		{"POST", "", `{"stable":1,"candidate":2,"stpes":[5]}`, 400, `unknown field "stpes"`},
		{"POST", "", `{"stable":1,"candidate":2,"interval":"soon"}`, 400, `duration "soon"`},
		{"POST", "", `{"stable":1,"candidate":2,"steps":[50,10]}`, 400, "steps [50 10]"},
		{"POST", "", `{"stable":1,"candidate":2,"analysis":{"confidence":1.5}}`, 400, "analysis.confidence 1.5"},
		{"POST", "", `{"stable":1,"candidate":9}`, 400, "version 9 is not loaded"},
		{"POST", "/promote", "", 404, "no rollout"},
		{"POST", "/rewind", "", 404, `rollout command "rewind"`},
	} {
		r := call(t, tc.method, url+tc.path, []byte(tc.body), nil)
		var e struct{ Error string }
		json.Unmarshal(r.body, &e)
		if r.status != tc.status || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if _, err := s.Rollouts().Get("mlp"); err == nil {
		t.Fatal("a bad request started a rollout")
	}
	sp := withModel(spec(50, 100))
	sp.Interval = deploy.Duration(time.Hour)
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", url, []byte(`{"stable":1,"candidate":2}`), nil); r.status != 409 || !strings.Contains(string(r.body), "abort it first") {
		t.Fatalf("second rollout: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", url+"/undo", nil, nil); r.status != 409 || !strings.Contains(string(r.body), "nothing to undo") {
		t.Fatalf("undo in progress: %d %s", r.status, r.body)
	}
}
