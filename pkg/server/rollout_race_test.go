package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// quickSpec is a canary whose steps pass on 10 successful candidate
// requests, latency not judged: a step a second under load's traffic.
func quickSpec(steps ...float64) deploy.Spec {
	sp := withModel(spec(steps...))
	sp.Interval = deploy.Duration(time.Second)
	sp.Analysis.MaxP99Ratio = 0
	return sp
}

// waitStep waits, on the bubble's clock, for the rollout to reach step i.
func waitStep(t *testing.T, s *Server, i int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := s.Rollouts().Get("mlp")
		if err == nil && st.Step >= i {
			return
		}
		if time.Now().After(deadline) || err == nil && st.Done() {
			b, _ := json.MarshalIndent(st, "", " ")
			t.Fatalf("rollout never reached step %d:\n%s", i, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An abort that lands after the analysis judged a step and before it
// applied its verdict wins: it answers 200, traffic goes to the stable
// version and stays there (the verdict, on a revision that is gone, is
// dropped), and a second abort is refused because the rollout has ended.
// The hook lands the abort at exactly that point on every run.
func TestAbortLandingMidAnalysisWins(t *testing.T) {
	dir := twoVersions(t)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		var abort reply
		hooked := 0
		s.Rollouts().BeforeApply(func(string) {
			if hooked++; hooked == 1 {
				abort = serve(s.AdminHandler(), "POST", "/v2/admin/models/mlp/rollout/abort", nil)
			}
		})
		load(t, s)
		if _, err := s.Rollouts().Start(quickSpec(25, 50, 100), "test"); err != nil {
			t.Fatal(err)
		}
		st := waitPhase(t, s, deploy.Aborted, deploy.Promoted, deploy.RolledBack)
		time.Sleep(3 * time.Second) // several intervals: nothing may move traffic now
		if abort.status != 200 || st.Phase != deploy.Aborted {
			t.Fatalf("abort: %d %s; phase %s", abort.status, abort.body, st.Phase)
		}
		if p, _ := s.CurrentPolicy("mlp"); len(p.Weights) != 1 || p.Weights[1] != 1 {
			t.Fatalf("traffic after the abort %+v, want all on version 1", p)
		}
		st, _ = s.Rollouts().Get("mlp")
		if st.Step != 0 || !strings.HasSuffix(kinds(st), "step aborted") {
			t.Fatalf("step %d, history %s: the judged verdict was applied after the abort", st.Step, kinds(st))
		}
		if r := serve(s.AdminHandler(), "POST", "/v2/admin/models/mlp/rollout/abort", nil); r.status != 409 || !strings.Contains(string(r.body), "has ended (aborted)") {
			t.Fatalf("second abort: %d %s", r.status, r.body)
		}
	})
}

// A server restarted mid-rollout resumes the step with a fresh analysis
// window, saying so, and judges the candidate on the new process's
// requests alone: one failing 29% of them is rolled back.
func TestRestartMidRolloutRollsBackAFailingCandidate(t *testing.T) {
	dir, state := twoVersions(t), t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		repo, err := runner.Open(dir, runner.LoadOptions{Isolation: runner.IsolationNone})
		if err != nil {
			t.Fatal(err)
		}
		s1, err := New(repo, Options{StateDir: state})
		if err != nil {
			t.Fatal(err)
		}
		stop := loadUntil(s1)
		if _, err := s1.Rollouts().Start(quickSpec(25, 50, 100), "test"); err != nil {
			t.Fatal(err)
		}
		waitStep(t, s1, 1)
		stop()
		s1.Close()
		repo.Close()

		s2 := serveInBubble(t, dir, Options{StateDir: state, AllowFaultInjection: true})
		if err := s2.SetFault("mlp", 2, &Fault{ErrorRate: 0.29}); err != nil {
			t.Fatal(err)
		}
		load(t, s2)
		st := waitPhase(t, s2, deploy.Promoted, deploy.RolledBack)
		last := st.History[len(st.History)-1]
		if st.Phase != deploy.RolledBack || !strings.Contains(kinds(st), deploy.Resumed) || !strings.Contains(last.Reason, "success rate") {
			b, _ := json.MarshalIndent(st.History, "", " ")
			t.Fatalf("phase %s: %s\n%s", st.Phase, last.Reason, b)
		}
		if p, _ := s2.CurrentPolicy("mlp"); len(p.Weights) != 1 || p.Weights[1] != 1 {
			t.Fatalf("traffic after rollback %+v", p)
		}
	})
}

// A candidate whose files change during its canary is not the one the
// earlier steps judged: the rollout stops and says so, or, asked to,
// starts again from the first step and promotes the new revision, naming
// its digest.
func TestReplacedCandidateStopsTheRollout(t *testing.T) {
	for _, onChange := range []string{deploy.OnChangeAbort, deploy.OnChangeRestart} {
		t.Run(onChange, func(t *testing.T) {
			dir := twoVersions(t)
			synctest.Test(t, func(t *testing.T) {
				s := serveInBubble(t, dir, Options{})
				load(t, s)
				sp := quickSpec(25, 50, 100)
				sp.OnCandidateChange = onChange
				started, err := s.Rollouts().Start(sp, "test")
				if err != nil {
					t.Fatal(err)
				}
				waitStep(t, s, 1)
				// Another revision of version 2: its configuration changed
				// and the repository reloaded (as a poll of it would).
				if err := os.WriteFile(filepath.Join(dir, "mlp", runner.ConfigFile), []byte("max_batch_size: 4\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := s.Repository().Load("mlp"); err != nil {
					t.Fatal(err)
				}
				digest, _ := s.Repository().Digest("mlp", 2)
				st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack)
				if !strings.Contains(kinds(st), deploy.CandidateChanged) {
					t.Fatalf("history %s", kinds(st))
				}
				last := st.History[len(st.History)-1]
				switch onChange {
				case deploy.OnChangeAbort:
					if st.Phase != deploy.RolledBack || !strings.Contains(last.Reason, "changed from "+started.CandidateDigest+" to "+digest) {
						t.Fatalf("phase %s: %s", st.Phase, last.Reason)
					}
					if p, _ := s.CurrentPolicy("mlp"); len(p.Weights) != 1 || p.Weights[1] != 1 {
						t.Fatalf("traffic %+v", p)
					}
				case deploy.OnChangeRestart:
					// Every step passed again after the change.
					after := kinds(st)[strings.Index(kinds(st), deploy.CandidateChanged):]
					if st.Phase != deploy.Promoted || strings.Count(after, "pass") != 3 || st.CandidateDigest != digest || !strings.Contains(last.Reason, digest) {
						t.Fatalf("phase %s, digest %s, history %s: %s", st.Phase, st.CandidateDigest, kinds(st), last.Reason)
					}
				}
			})
		})
	}
}

// A reload from a truncated model file answers 400 naming the file, and
// the version keeps answering; the index says why.
func TestCorruptReloadKeepsServing(t *testing.T) {
	dir := twoVersions(t)
	s, hs := start(t, openRepo(t, dir), Options{})
	file := filepath.Join(dir, "mlp", "2", "model.onnx")
	data, _ := os.ReadFile(file)
	if err := os.WriteFile(file, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", nil, nil)
	if r.status != 400 || !strings.Contains(string(r.body), "mlp/2/model.onnx") {
		t.Fatalf("load of a truncated file: %d %s", r.status, r.body)
	}
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	if r := call(t, "POST", hs.URL+"/v2/models/mlp/versions/2/infer", body, map[string]string{protocol.HeaderContentLength: strconvI(hl)}); r.status != 200 {
		t.Fatalf("version 2 after a failed reload: %d %s", r.status, r.body)
	}
	r = call(t, "POST", hs.URL+"/v2/repository/index", nil, nil)
	if !strings.Contains(string(r.body), "latest reload failed") || !strings.Contains(string(r.body), `"READY"`) {
		t.Fatalf("index %s", r.body)
	}
}

// Clearing the traffic policy sends all traffic to the latest ready
// version: refused, naming why, when that version's last rollout was
// aborted or rolled back, unless forced.
func TestBackToLatestRefusesARejectedVersion(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	s, hs := start(t, repo, Options{})
	sp := withModel(spec(50, 100))
	sp.Interval = deploy.Duration(time.Hour)
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	base := adminBase(t, s, hs) + "/v2/admin/models/mlp"
	if r := call(t, "POST", base+"/rollout/abort", nil, nil); r.status != 200 {
		t.Fatalf("abort: %d %s", r.status, r.body)
	}
	r := call(t, "DELETE", base+"/traffic", nil, nil)
	if r.status != 409 || !strings.Contains(string(r.body), "version 2") || !strings.Contains(string(r.body), "aborted by") || !strings.Contains(string(r.body), "force=true") {
		t.Fatalf("back to a rejected latest: %d %s", r.status, r.body)
	}
	if p, _ := s.CurrentPolicy("mlp"); p.Weights[1] != 1 {
		t.Fatalf("a refused clear changed traffic: %+v", p)
	}
	if r := call(t, "DELETE", base+"/traffic?force=maybe", nil, nil); r.status != 400 || !strings.Contains(string(r.body), "force") {
		t.Fatalf("force=maybe: %d %s", r.status, r.body)
	}
	if r := call(t, "DELETE", base+"/traffic?force=true", nil, nil); r.status != 200 {
		t.Fatalf("forced: %d %s", r.status, r.body)
	}
	if _, ok := s.CurrentPolicy("mlp"); ok {
		t.Fatal("a forced clear kept the policy")
	}
}
