package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
)

// adminError calls an admin endpoint and returns its status and the
// error its JSON body gives.
func adminError(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	r := call(t, method, url, []byte(body), nil)
	var e struct{ Error string }
	json.Unmarshal(r.body, &e)
	return r.status, e.Error
}

// servedVersion returns the version that answers an unversioned request.
func servedVersion(t *testing.T, base string) string {
	t.Helper()
	r, resp := infer(t, base, "mlp", &protocol.InferRequest{Inputs: image()}, true)
	if resp == nil {
		t.Fatalf("infer: %d %s", r.status, r.body)
	}
	return resp.ModelVersion
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A server restarted after the stable version's folder went cannot abort
// the rollout back to it: the abort is refused, naming the version, and
// the rollout, the traffic and the state on disk stay as they were.
// Promotion, to the version that is there, still works.
func TestAbortAfterStableGoneChangesNothing(t *testing.T) {
	dir, state := twoVersions(t), t.TempDir()
	repo := openRepo(t, dir)
	s, err := New(repo, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	sp := withModel(spec(10, 50, 100))
	sp.Interval = deploy.Duration(time.Hour)
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	repo.Close()
	if err := os.RemoveAll(filepath.Join(dir, "mlp", "1")); err != nil {
		t.Fatal(err)
	}

	s2, hs := start(t, openRepo(t, dir), Options{StateDir: state})
	admin := adminBase(t, s2, hs)
	onDisk := readFile(t, filepath.Join(state, "rollout.mlp.json"))
	trafficOnDisk := readFile(t, filepath.Join(state, "traffic.mlp.json"))
	before := servedVersion(t, hs.URL)

	status, msg := adminError(t, "POST", admin+"/v2/admin/models/mlp/rollout/abort", "")
	if status != 409 || !strings.Contains(msg, "version 1") || !strings.Contains(msg, "not loaded") {
		t.Fatalf("abort with the stable version gone: %d %q", status, msg)
	}
	if st, _ := s2.Rollouts().Get("mlp"); st.Phase != deploy.Progressing || strings.Contains(kinds(st), deploy.Aborted) {
		t.Fatalf("after a refused abort the rollout is %s: %s", st.Phase, kinds(st))
	}
	if !bytes.Equal(readFile(t, filepath.Join(state, "rollout.mlp.json")), onDisk) || !bytes.Equal(readFile(t, filepath.Join(state, "traffic.mlp.json")), trafficOnDisk) {
		t.Fatal("a refused abort changed the state on disk")
	}
	if after := servedVersion(t, hs.URL); after != before || after != "2" {
		t.Fatalf("traffic went from version %s to %s", before, after)
	}

	if r := call(t, "POST", admin+"/v2/admin/models/mlp/rollout/promote", nil, nil); r.status != 200 {
		t.Fatalf("promote to the version that is loaded: %d %s", r.status, r.body)
	}
	if p, _ := s2.Policy("mlp"); len(p.Weights) != 1 || p.Weights[2] != 1 {
		t.Fatalf("traffic after promotion %+v", p)
	}
	status, msg = adminError(t, "POST", admin+"/v2/admin/models/mlp/rollout/undo", "")
	if status != 409 || !strings.Contains(msg, "version 1") {
		t.Fatalf("undo with the stable version gone: %d %q", status, msg)
	}
	if st, _ := s2.Rollouts().Get("mlp"); st.Phase != deploy.Promoted {
		t.Fatalf("after a refused undo the rollout is %s", st.Phase)
	}
}

// While a rollout is in progress the model's traffic and versions are
// its own: an admin's policy change, load or unload is refused over
// either protocol, naming the rollout, and changes nothing.
func TestRolloutOwnsItsModel(t *testing.T) {
	s, hs := start(t, openRepo(t, twoVersions(t)), Options{AdminTrustLoopback: true}) // gRPC admin from loopback
	admin := adminBase(t, s, hs)
	sp := withModel(spec(10, 100))
	sp.Interval = deploy.Duration(time.Hour)
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	want, _ := s.Policy("mlp")
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v2/admin/models/mlp/traffic", `{"weights":{"1":1}}`},
		{"DELETE", "/v2/admin/models/mlp/traffic", ""},
		{"POST", "/v2/repository/models/mlp/load", ""},
		{"POST", "/v2/repository/models/mlp/unload", ""},
	} {
		status, msg := adminError(t, tc.method, admin+tc.path, tc.body)
		if status != 409 || !strings.Contains(msg, "canary") || !strings.Contains(msg, "promoted or aborted") {
			t.Errorf("%s %s during a rollout: %d %q", tc.method, tc.path, status, msg)
		}
	}
	c, _ := serveGRPC(t, s)
	ctx := context.Background()
	if _, err := c.RepositoryModelUnload(ctx, &inferencepb.RepositoryModelUnloadRequest{ModelName: "mlp"}); code(err) != codes.FailedPrecondition {
		t.Errorf("gRPC unload during a rollout: %v", err)
	}
	if p, _ := s.Policy("mlp"); p.Weights[1] != want.Weights[1] || p.Weights[2] != want.Weights[2] {
		t.Fatalf("traffic changed to %+v", p)
	}
	if !s.VersionReady("mlp", 1) || !s.VersionReady("mlp", 2) {
		t.Fatal("a refused unload unloaded")
	}
	if _, err := s.Rollouts().Abort("mlp", "test"); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", admin+"/v2/repository/models/mlp/unload", nil, nil); r.status != 200 {
		t.Fatalf("unload after the rollout: %d %s", r.status, r.body)
	}
}

// breakState makes the state folder's file for kind and model unwritable
// in place: a folder where the file was, which a rename cannot replace.
func breakState(t *testing.T, state, kind string) {
	t.Helper()
	path := filepath.Join(state, kind+".mlp.json")
	os.Remove(path)
	if err := os.MkdirAll(filepath.Join(path, "blocked"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A change the server cannot save is not made: the answer is a 500 naming
// the state, and memory and disk agree on the state before.
func TestUnsavedChangesAreNotMade(t *testing.T) {
	state := t.TempDir()
	s, hs := start(t, openRepo(t, twoVersions(t)), Options{StateDir: state})
	admin := adminBase(t, s, hs)
	if r := call(t, "PUT", admin+"/v2/admin/models/mlp/traffic", []byte(`{"weights":{"1":3,"2":1}}`), nil); r.status != 200 {
		t.Fatalf("policy: %d %s", r.status, r.body)
	}
	breakState(t, state, "traffic")
	status, msg := adminError(t, "PUT", admin+"/v2/admin/models/mlp/traffic", `{"weights":{"2":1}}`)
	if status != 500 || !strings.Contains(msg, "not saved") {
		t.Fatalf("policy that cannot be saved: %d %q", status, msg)
	}
	if p, _ := s.Policy("mlp"); p.Weights[1] != 3 || p.Weights[2] != 1 {
		t.Fatalf("an unsaved policy was applied: %+v", p)
	}

	// A rollout whose state is saved but whose traffic cannot be: the
	// abort is undone on disk too.
	os.RemoveAll(filepath.Join(state, "traffic.mlp.json"))
	sp := withModel(spec(10, 100))
	sp.Interval = deploy.Duration(time.Hour)
	if _, err := s.Rollouts().Start(sp, "test"); err != nil {
		t.Fatal(err)
	}
	onDisk := readFile(t, filepath.Join(state, "rollout.mlp.json"))
	breakState(t, state, "traffic")
	status, msg = adminError(t, "POST", admin+"/v2/admin/models/mlp/rollout/abort", "")
	if status != 500 || !strings.Contains(msg, "traffic not moved") {
		t.Fatalf("abort whose traffic cannot be saved: %d %q", status, msg)
	}
	if st, _ := s.Rollouts().Get("mlp"); st.Phase != deploy.Progressing {
		t.Fatalf("rollout %s after a failed abort", st.Phase)
	}
	if !bytes.Equal(readFile(t, filepath.Join(state, "rollout.mlp.json")), onDisk) {
		t.Fatal("the failed abort's state stayed on disk")
	}
	if p, _ := s.Policy("mlp"); p.Weights[1] != 90 || p.Weights[2] != 10 {
		t.Fatalf("traffic after a failed abort %+v", p)
	}

	// Neither state can be saved: the abort is refused before anything.
	breakState(t, state, "rollout")
	if status, msg = adminError(t, "POST", admin+"/v2/admin/models/mlp/rollout/abort", ""); status != 500 || !strings.Contains(msg, "state not saved") {
		t.Fatalf("abort whose state cannot be saved: %d %q", status, msg)
	}
	if st, _ := s.Rollouts().Get("mlp"); st.Phase != deploy.Progressing {
		t.Fatalf("rollout %s after a failed abort", st.Phase)
	}
}

// A load keeps traffic on the serving version when a newer one arrives,
// and a load that finds no newer one leaves no policy behind.
func TestLoadKeepsTrafficAndLeavesNoPin(t *testing.T) {
	dir := twoVersions(t)
	two := filepath.Join(dir, "mlp", "2")
	moved := filepath.Join(t.TempDir(), "2")
	os.Rename(two, moved)
	s, hs := start(t, openRepo(t, dir), Options{})
	admin := adminBase(t, s, hs)
	if r := call(t, "POST", admin+"/v2/repository/models/mlp/load", nil, nil); r.status != 200 {
		t.Fatalf("load: %d %s", r.status, r.body)
	}
	if p, ok := s.Policy("mlp"); ok {
		t.Fatalf("a load with no newer version left a policy %+v", p)
	}
	os.Rename(moved, two)
	if r := call(t, "POST", admin+"/v2/repository/models/mlp/load", nil, nil); r.status != 200 {
		t.Fatalf("load: %d %s", r.status, r.body)
	}
	if v := servedVersion(t, hs.URL); v != "1" {
		t.Fatalf("after loading version 2, version %s serves", v)
	}
	status, msg := adminError(t, "POST", admin+"/v2/repository/models/ghost/load", "")
	if status != 404 || !strings.Contains(msg, "ghost") {
		t.Fatalf("load of an unknown model: %d %q", status, msg)
	}
}

// adminBase returns the base URL of s's admin API.
func adminBase(t *testing.T, s *Server, hs *frontServer) string {
	t.Helper()
	as := httptest.NewServer(s.AdminHandler())
	t.Cleanup(as.Close)
	return as.URL
}

// The admin API's JSON bodies are checked as JSON text before they are
// decoded (protocol.CheckJSON), refused whole past their limit, and
// refused with anything after their value; no answer quotes the body.
func TestAdminBodiesAreCheckedBeforeDecoding(t *testing.T) {
	s, hs := start(t, openRepo(t, twoVersions(t)), Options{})
	admin := adminBase(t, s, hs)
	traffic := admin + "/v2/admin/models/mlp/traffic"
	for _, c := range []struct{ method, url, body, want string }{
		{"PUT", traffic, `{"` + strings.Repeat("k", 2000) + `":1}`, "traffic policy: invalid input: the body has a key of 2000 bytes, at most 1024"},
		{"PUT", traffic, `{"weights":{"1":1}} ]]]`, "traffic policy: invalid input: request JSON: more after its value"},
		{"PUT", traffic, `{"weights":{"1":1}}` + strings.Repeat(" ", 1<<20), "traffic policy: invalid input: the body is over 1048576 bytes"},
		{"PUT", traffic, "{\"weights\":{\"1\":1},\"x\":\"\xff\"}", "the body is not UTF-8 (byte 24)"},
		{"POST", admin + "/v2/admin/models/mlp/rollout", `{"candidate":` + strings.Repeat("9", 300) + `}`, "rollout spec: invalid input: the body has a number of 300 bytes, at most 256"},
		{"POST", admin + "/v2/admin/models/mlp/rollout", strings.Repeat("[", 65) + strings.Repeat("]", 65), "rollout spec: invalid input: the body nests 65 deep, at most 64"},
		{"POST", admin + "/v2/repository/models/mlp/load", `{"parameters":{"` + strings.Repeat("p", 2000) + `":1}}`, "the body has a key of 2000 bytes, at most 1024"},
		{"POST", admin + "/v2/repository/models/mlp/load", `{"parameters":{}}}`, "more after its JSON object"},
		{"PUT", traffic, `{"sticky":"` + strings.Repeat("s", 3000) + `","weights":{"1":1}}`, `sticky "sssss`},
	} {
		status, msg := adminError(t, c.method, c.url, c.body)
		if status != 400 || !strings.Contains(msg, c.want) || len(msg) > 300 {
			t.Errorf("%s %s %.60q: %d %q, want 400 %q", c.method, c.url, c.body, status, msg, c.want)
		}
	}
	if p, _ := s.Policy("mlp"); len(p.Weights) != 0 {
		t.Errorf("a refused body changed the policy: %+v", p)
	}
}
