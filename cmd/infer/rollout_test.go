package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// rolloutServer serves mlp versions 1 and 2 (2 from the bundled model at
// v2, mlp's by default), with all traffic pinned to 1 as before a rollout,
// and unversioned load from a few clients until the test ends. It returns
// the server's admin API.
func rolloutServer(t *testing.T, v2 string) string {
	t.Helper()
	dir := t.TempDir()
	addVersion(t, dir, "1", "mlp")
	addVersion(t, dir, "2", v2)
	base, admin := servePinned(t, dir, "1")

	// The clients stop between requests, not mid-request: a connection
	// dialled and abandoned would hold the server's shutdown for seconds.
	var quit atomic.Bool
	var wg sync.WaitGroup
	body, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	for range 4 {
		wg.Go(func() {
			for !quit.Load() {
				req, _ := http.NewRequest("POST", base+"/v2/models/mlp/infer", bytes.NewReader(body))
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	t.Cleanup(func() { quit.Store(true); wg.Wait() })
	return admin
}

var fastRollout = []string{"--interval", "300ms", "--min-requests", "5", "--poll", "50ms"}

// addVersion puts the bundled model src in the repository dir as mlp's
// version v.
func addVersion(t *testing.T, dir, v, src string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", src, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "mlp", v), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "mlp", v, "model.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// servePinned serves the repository dir until the test ends, all of mlp's
// traffic on version pin; it returns the HTTP and admin base URLs.
func servePinned(t *testing.T, dir, pin string) (base, admin string) {
	t.Helper()
	addrs, stop, done := startServeAddrs(t, serveOptions{path: dir})
	t.Cleanup(func() { stop(); <-done })
	base, admin = "http://"+addrs["HTTP"], "http://"+addrs["admin"]
	req, _ := http.NewRequest("PUT", admin+"/v2/admin/models/mlp/traffic", strings.NewReader(`{"weights":{"`+pin+`":1}}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pin version %s: %v %v", pin, resp, err)
	}
	return base, admin
}

// The defaults find the model, the stable and the new version; the command
// prints every step with its analysis and ends at the promotion; status,
// history, undo and a late promote follow.
func TestRolloutPromotesAndUndoes(t *testing.T) {
	base := rolloutServer(t, "mlp")
	out, err := run(t, append([]string{"rollout", "--admin-url", base, "--canary", "50%"}, fastRollout...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"canary from version 1 to 2", "step 1 (50%)    pass", "step 2 (100%)   pass", "candidate_requests=", "candidate_p99_ms=", "promoted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run(t, "rollout", "status", "--admin-url", base); err != nil || !strings.Contains(out, "mlp: canary from version 1 to 2, promoted") || strings.Count(out, "last analysis:") != 1 {
		t.Errorf("status: %v\n%s", err, out)
	}
	out, err = run(t, "rollout", "history", "--admin-url", base, "--output", "json")
	var st deploy.State
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Phase != deploy.Promoted || len(st.History) < 5 {
		t.Fatalf("history: %v\n%s", err, out)
	}
	if out, err := run(t, "rollout", "undo", "--admin-url", base); err != nil || !strings.Contains(out, "rolled-back") {
		t.Errorf("undo: %v\n%s", err, out)
	}
	if out, err := run(t, "rollout", "promote", "--admin-url", base); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("promote after the end: %v\n%s", err, out)
	}
}

// A version that answers mlp's requests with errors is rolled back at the
// first step, exit status 1, the reason in the last JSON event.
func TestRolloutRollsBackJSON(t *testing.T) {
	base := rolloutServer(t, "fixed-shape")
	out, err := run(t, append([]string{"rollout", "--admin-url", base, "--output", "json"}, fastRollout...)...)
	if err == nil || !strings.Contains(err.Error(), "rolled-back") {
		t.Fatalf("err %v\n%s", err, out)
	}
	var events []deploy.Event
	var lastLine string
	for line := range strings.Lines(strings.TrimSuffix(out, "Error: "+err.Error()+"\n")) {
		var e deploy.Event
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		events, lastLine = append(events, e), line
	}
	if len(events) < 3 {
		t.Fatalf("events %+v\n%s", events, out)
	}
	last := events[len(events)-1]
	if last.Kind != deploy.RolledBack || last.Step != 0 || !strings.Contains(last.Reason, "success rate") {
		t.Fatalf("last event %+v", last)
	}
	// Programs read the step as people do, counted from 1.
	if !strings.Contains(lastLine, `"step":1,`) {
		t.Fatalf("the first step's event %s, want \"step\":1", lastLine)
	}
}

func TestRolloutBadInput(t *testing.T) {
	base := rolloutServer(t, "mlp")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--canary", "150%"}, "--canary \"150%\": want a percentage"},
		{[]string{"--canary", "5%", "--blue-green"}, "none of the others can be"},
		{[]string{"--steps", "5,x"}, "--steps \"x\""},
		{[]string{"--ab-key", "header:X"}, "--ab-key is for --ab"},
		{[]string{"--output", "yaml"}, "--output \"yaml\""},
		{[]string{"--model", "ghost"}, `model "ghost" has no ready version`},
		{[]string{"--version", "7"}, "version 7 of model \"mlp\" is not loaded (ready: [1 2])"},
		{[]string{"--interval", "1ms"}, "interval 1ms"},
	} {
		out, err := run(t, append([]string{"rollout", "--admin-url", base}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
	if _, err := run(t, "rollout", "status", "--admin-url", base); err == nil || !strings.Contains(err.Error(), "no rollout") {
		t.Errorf("status without a rollout: %v", err)
	}
	if _, err := run(t, "rollout", "status", "--admin-url", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("no server: %v", err)
	}
}

// A new version's folder dropped into the repository is loaded and warmed
// by the rollout itself, while traffic stays on the version serving.
func TestRolloutLoadsTheNewVersion(t *testing.T) {
	dir := mlpRepository(t)
	data, _ := os.ReadFile(filepath.Join(dir, "mlp", "1", "model.onnx"))
	addrs, stop, done := startServeAddrs(t, serveOptions{path: dir})
	t.Cleanup(func() { stop(); <-done })
	base := "http://" + addrs["admin"]
	os.MkdirAll(filepath.Join(dir, "mlp", "2"), 0o755)
	os.WriteFile(filepath.Join(dir, "mlp", "2", "model.onnx"), data, 0o644)

	out, err := run(t, "rollout", "--admin-url", base, "--blue-green", "--detach")
	if err != nil || !strings.Contains(out, "loading \"mlp\"") || !strings.Contains(out, "blue-green from version 1 to 2") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// serveProcess runs infer serve as a child process on loopback and waits
// until it is ready.
func serveProcess(t *testing.T, repo, state string, port, adminPort int) *exec.Cmd {
	t.Helper()
	cmd, _ := inferProcess(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/v2/health/ready", 30*time.Second, "serve", repo, "--host", "127.0.0.1", "--http-port", strconv.Itoa(port),
		"--grpc-port", "0", "--metrics-port", "0", "--admin-port", strconv.Itoa(adminPort), "--state-dir", state)
	return cmd
}

// inferProcess runs this binary as infer with args, a child process
// killed when the test ends, and waits up to budget for ready to answer
// 200. It returns the process and its standard error so far and to come.
func inferProcess(t *testing.T, ready string, budget time.Duration, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(budget); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("infer %v never became ready within %v:\n%s", args, budget, logs.String())
		}
	}
}

// kill -9 mid-rollout: the restarted server has the same versions, the
// same weights, and the rollout at the same step.
func TestRolloutSurvivesKill9(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2"} {
		os.MkdirAll(filepath.Join(dir, "mlp", v), 0o755)
		os.WriteFile(filepath.Join(dir, "mlp", v, "model.onnx"), data, 0o644)
	}
	ports := freePorts(t, 2)
	base := "http://127.0.0.1:" + strconv.Itoa(ports[1]) // the admin API
	server := serveProcess(t, dir, state, ports[0], ports[1])
	if out, err := run(t, "rollout", "--admin-url", base, "--from", "1", "--version", "2", "--steps", "10,50,100", "--interval", "1h", "--detach"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	weights := func() map[int64]float64 {
		resp, err := http.Get(base + "/v2/admin/models/mlp/traffic")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p deploy.Policy
		json.NewDecoder(resp.Body).Decode(&p)
		return p.Weights
	}
	if w := weights(); w[1] != 90 || w[2] != 10 {
		t.Fatalf("weights before the kill %v", w)
	}

	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	server.Wait()
	serveProcess(t, dir, state, ports[0], ports[1])

	out, err := run(t, "rollout", "status", "--admin-url", base, "--output", "json")
	var st deploy.State
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Phase != deploy.Progressing || st.Step != 0 || st.Percent() != 10 {
		t.Fatalf("after the restart: %s at step %d (%g%%)", st.Phase, st.Step, st.Percent())
	}
	if w := weights(); w[1] != 90 || w[2] != 10 {
		t.Fatalf("weights after the restart %v", w)
	}
	if out, err := run(t, "rollout", "abort", "--admin-url", base); err != nil || !strings.Contains(out, "aborted") {
		t.Fatalf("abort after the restart: %v\n%s", err, out)
	}
}

// After a promotion the version it replaced is still loaded: the default
// rolls forward only, and with no newer version folder either, the
// command fails without reloading the live model (its figures intact).
func TestRolloutNeverGoesBackwards(t *testing.T) {
	dir := t.TempDir()
	addVersion(t, dir, "1", "mlp")
	addVersion(t, dir, "2", "mlp")
	base, admin := servePinned(t, dir, "2")
	body, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	for range 3 {
		req, _ := http.NewRequest("POST", base+"/v2/models/mlp/infer", bytes.NewReader(body))
		req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("infer: %v %v", resp, err)
		}
	}
	served := func() int {
		resp, err := http.Get(base + "/v2/models/mlp/versions/2/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var stats struct {
			ModelStats []struct {
				InferenceStats struct{ Success struct{ Count int } } `json:"inference_stats"`
			} `json:"model_stats"`
		}
		json.NewDecoder(resp.Body).Decode(&stats)
		if len(stats.ModelStats) != 1 {
			t.Fatalf("stats %+v", stats)
		}
		return stats.ModelStats[0].InferenceStats.Success.Count
	}
	if n := served(); n != 3 {
		t.Fatalf("version 2 served %d, want 3", n)
	}
	out, err := run(t, "rollout", "--admin-url", admin, "--canary", "5%")
	if err == nil || !strings.Contains(err.Error(), "no ready version newer than version 2") || !strings.Contains(err.Error(), "nothing was loaded") {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := served(); n != 3 {
		t.Fatalf("version 2's figures after the failed rollout: %d served, want 3 (the model was reloaded)", n)
	}

	// A newer folder is loaded, and rolled out, forward.
	addVersion(t, dir, "3", "mlp")
	out, err = run(t, "rollout", "--admin-url", admin, "--canary", "5%", "--interval", "1h", "--detach")
	if err != nil || !strings.Contains(out, "loading \"mlp\" to pick up its new version 3") || !strings.Contains(out, "canary from version 2 to 3") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// A rollout that pauses (too few requests to judge) says, once, how to
// decide, and follows it to the decision; meanwhile a new rollout of the
// model is refused naming the paused one, where it used to read the
// versions from the paused rollout's traffic and complain that they
// were the same.
func TestRolloutPausedSaysHowToDecide(t *testing.T) {
	base := rolloutServer(t, "mlp")
	type result struct {
		out string
		err error
	}
	followed := make(chan result, 1)
	go func() {
		out, err := run(t, "rollout", "--admin-url", base, "--blue-green", "--interval", "200ms", "--poll", "50ms", "--min-requests", "1000000", "--inconclusive-limit", "1")
		followed <- result{out, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(t, "rollout", "status", "--admin-url", base)
		if err == nil && strings.Contains(out, "paused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pause within 30s: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := run(t, "rollout", "--admin-url", base, "--canary", "10%")
	if err == nil || !strings.Contains(err.Error(), `model "mlp" has a blue-green rollout from version 1 to 2, paused at step 1 of 1: promote or abort it first`) {
		t.Fatalf("a rollout over the paused one: %v, want it refused naming the paused one\n%s", err, out)
	}
	if out, err := run(t, "rollout", "abort", "--admin-url", base); err != nil {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	r := <-followed
	if r.err == nil || !strings.Contains(r.err.Error(), "aborted") || strings.Count(r.out, "waiting for a decision: 'infer rollout promote -m mlp' or 'infer rollout abort -m mlp'") != 1 {
		t.Fatalf("the followed rollout: %v, want aborted after one line on how to decide\n%s", r.err, r.out)
	}
}
