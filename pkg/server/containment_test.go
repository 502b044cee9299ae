package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

var faultModels = filepath.Join("..", "..", "testdata", "faults")

// mlpJSON is one mlp request as JSON.
var mlpJSON = []byte(`{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 783) + `0.5]}]}`)

func divideJSON(b [4]int32) []byte {
	return fmt.Appendf(nil, `{"inputs":[{"name":"a","shape":[1,4],"datatype":"INT32","data":[8,9,10,11]},{"name":"b","shape":[1,4],"datatype":"INT32","data":[%d,%d,%d,%d]}]}`, b[0], b[1], b[2], b[3])
}

// hammer sends mlp requests until stop is closed and returns how many were
// answered and the failures: a model beside a fault must keep answering.
func hammer(t *testing.T, url string, stop <-chan struct{}) func() (int, []string) {
	var (
		mu       sync.Mutex
		ok       int
		failures []string
		wg       sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := call(t, "POST", url+"/v2/models/mlp/infer", mlpJSON, nil)
				mu.Lock()
				if r.status == 200 {
					ok++
				} else {
					failures = append(failures, fmt.Sprintf("%d %s", r.status, r.body))
				}
				mu.Unlock()
			}
		})
	}
	return func() (int, []string) {
		wg.Wait()
		return ok, failures
	}
}

// One request whose integer division by zero raises SIGFPE in the runtime
// kills only its model host: over HTTP and gRPC it gets 500 / INTERNAL
// naming the signal, mlp beside it answers throughout, the host comes
// back and serves, and the metrics count the crashes.
func TestHostCrashIsContainedOverHTTPAndGRPC(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		"mlp":     {mlpFile, ""},
		"int-div": {filepath.Join(faultModels, "int-div.onnx"), ""},
	})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	c, _ := serveGRPC(t, s)

	stop := make(chan struct{})
	done := hammer(t, hs.URL, stop)

	r := call(t, "POST", hs.URL+"/v2/models/int-div/infer", divideJSON([4]int32{1, 0, 1, 1}), nil)
	if r.status != 500 || !strings.Contains(string(r.body), "model host of int-div v1 died: SIGFPE") {
		t.Errorf("poison over HTTP: %d %s, want 500 naming the host's SIGFPE", r.status, r.body)
	}
	r = call(t, "POST", hs.URL+"/v2/models/int-div/infer", divideJSON([4]int32{2, 3, 5, 11}), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"data":[4,3,2,1]`) {
		t.Errorf("after the crash: %d %s, want the quotient from a restarted host", r.status, r.body)
	}
	a := tensor.Tensor{Name: "a", DataType: tensor.Int32, Shape: []int64{1, 4}, Data: make([]byte, 16)}
	b := tensor.Tensor{Name: "b", DataType: tensor.Int32, Shape: []int64{1, 4}, Data: make([]byte, 16)}
	_, err := c.ModelInfer(context.Background(), requests.GRPC("int-div", []tensor.Tensor{a, b}, true))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "SIGFPE") {
		t.Errorf("poison over gRPC: %v, want INTERNAL naming SIGFPE", err)
	}
	close(stop)
	ok, failures := done()
	if len(failures) > 0 || ok == 0 {
		t.Errorf("mlp beside the crashes: %d answered, failures %v", ok, failures)
	}
	m := call(t, "GET", metricsURL(t, s), nil, nil)
	if !strings.Contains(string(m.body), `infer_model_host_crashes_total{model="int-div",version="1"} 2`) {
		t.Errorf("metrics do not count two crashes of int-div:\n%s", grepLines(string(m.body), "infer_model_host"))
	}
}

// A host killed from outside (kill -9, as the kernel's OOM killer does)
// loses nothing queued: every request is answered, those of the batch in
// flight once more each alone, and at most one lone request, the one the
// host was running, fails naming SIGKILL.
func TestKilledHostLosesNothingQueued(t *testing.T) {
	before := hostPIDs(t)
	repo := testrepo.Open(t, map[string][2]string{"mlp": {mlpFile, "max_batch_size: 8\ndynamic_batching: {max_queue_delay: 2ms}\n"}})
	_, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	var pid int
	for p := range hostPIDs(t) {
		if !before[p] {
			pid = p
		}
	}
	if pid == 0 {
		t.Fatal("found no model host of mlp")
	}

	const clients, each = 16, 25
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered int
		failures []string
	)
	started := make(chan struct{}, clients*each)
	for range clients {
		wg.Go(func() {
			for range each {
				started <- struct{}{}
				r := call(t, "POST", hs.URL+"/v2/models/mlp/infer", mlpJSON, nil)
				mu.Lock()
				answered++
				if r.status != 200 {
					failures = append(failures, fmt.Sprintf("%d %s", r.status, r.body))
				}
				mu.Unlock()
			}
		})
	}
	for range clients * 4 {
		<-started // the clients are busy: kill the host under them
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if answered != clients*each {
		t.Fatalf("%d of %d requests answered", answered, clients*each)
	}
	if len(failures) > 1 || len(failures) == 1 && !strings.Contains(failures[0], "SIGKILL") {
		t.Errorf("failures %v: want at most one, naming SIGKILL", failures)
	}
	if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
		t.Errorf("the killed host %d still exists", pid)
	}
}

// A model with no inputs is served over HTTP: each call returns its
// constants.
func TestModelWithNoInputsIsServedOverHTTP(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"no-inputs": {filepath.Join(faultModels, "no-inputs.onnx"), ""}})
	_, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	r := call(t, "POST", hs.URL+"/v2/models/no-inputs/infer", []byte(`{"inputs":[]}`), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"data":[1,2,3]`) {
		t.Errorf("no-inputs: %d %s, want [1,2,3]", r.status, r.body)
	}
}

// A request that makes the runtime allocate past resources.memory gets
// 500 naming the limit; the host restarts and the next request is served.
func TestMemoryLimitOverHTTP(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"expand": {filepath.Join(faultModels, "expand.onnx"), "resources: {memory: 256Mi}\n"}})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	expand := func(rows, cols int) reply {
		return call(t, "POST", hs.URL+"/v2/models/expand/infer", fmt.Appendf(nil,
			`{"inputs":[{"name":"value","shape":[1],"datatype":"FP32","data":[7]},{"name":"shape","shape":[2],"datatype":"INT64","data":[%d,%d]}]}`, rows, cols), nil)
	}
	if r := expand(1<<15, 1<<15); r.status != 500 || !strings.Contains(string(r.body), "resources.memory") {
		t.Errorf("4 GiB under a 256 MiB limit: %d %s", r.status, r.body)
	}
	if r := expand(2, 2); r.status != 200 || !strings.Contains(string(r.body), `"data":[7,7,7,7]`) {
		t.Errorf("after the memory fault: %d %s", r.status, r.body)
	}
	m := call(t, "GET", metricsURL(t, s), nil, nil)
	if !strings.Contains(string(m.body), `infer_model_host_memory_faults_total{model="expand",version="1"} 1`) {
		t.Errorf("metrics do not count the memory fault:\n%s", grepLines(string(m.body), "infer_model_host"))
	}
}

// A model that hangs at load is UNAVAILABLE with its reason and the
// others serve. The load timeout applies to mlp too, whose host starts in
// tens of milliseconds on an idle machine: 2 s leaves room for a loaded
// one, and slow-load's constant folding takes far longer.
func TestModelThatHangsAtLoadIsUnavailable(t *testing.T) {
	dir := testrepo.Dir(t, map[string][2]string{"mlp": {mlpFile, ""}, "slow-load": {filepath.Join(faultModels, "slow-load.onnx"), ""}})
	repo, err := runner.Open(dir, runner.LoadOptions{LoadTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "slow-load") {
		t.Fatalf("open: %v, want slow-load's failure reported", err)
	}
	t.Cleanup(repo.Close)
	s, hs := start(t, repo, Options{})
	as := adminBase(t, s, hs)
	var index []struct{ Name, State, Reason string }
	if err := json.Unmarshal(call(t, "POST", as+"/v2/repository/index", nil, nil).body, &index); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range index {
		if e.Name == "slow-load" {
			found = e.State == runner.StateUnavailable && strings.Contains(e.Reason, "did not load the model within 2s")
		}
	}
	if !found {
		t.Errorf("index %+v: want slow-load UNAVAILABLE naming the load timeout", index)
	}
	if r := call(t, "POST", hs.URL+"/v2/models/mlp/infer", mlpJSON, nil); r.status != 200 {
		t.Errorf("mlp beside it: %d %s", r.status, r.body)
	}
}

// hostPIDs returns this process's children that are model hosts.
func hostPIDs(t *testing.T) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	pids := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmd, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || err2 != nil {
			continue
		}
		// stat: pid (comm) state ppid ...
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == self && strings.Contains(string(cmd), "model-host") {
			pids[pid] = true
		}
	}
	return pids
}

// metricsURL serves s's /metrics on a loopback port until the test ends.
func metricsURL(t *testing.T, s *Server) string {
	t.Helper()
	ms := httptest.NewServer(s.MetricsHandler())
	t.Cleanup(ms.Close)
	return ms.URL + "/metrics"
}
