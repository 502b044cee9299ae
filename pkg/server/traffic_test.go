package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// twoVersions returns a repository folder with mlp versions 1 and 2.
func twoVersions(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2"} {
		os.MkdirAll(filepath.Join(dir, "mlp", v), 0o755)
		os.WriteFile(filepath.Join(dir, "mlp", v, "model.onnx"), data, 0o644)
	}
	return dir
}

func openRepo(t *testing.T, dir string) *runner.Repository {
	t.Helper()
	repo, err := runner.Open(dir, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(repo.Close) // its model hosts end with the test
	return repo
}

func setPolicy(t *testing.T, base string, p any, token string) reply {
	t.Helper()
	body, _ := json.Marshal(p)
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return call(t, "PUT", base+"/v2/admin/models/mlp/traffic", body, h)
}

func image() []tensor.Tensor {
	return []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}
}

// versionOf sends an unversioned request and returns the version answering.
func versionOf(t *testing.T, base string, header map[string]string) string {
	t.Helper()
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	h := map[string]string{protocol.HeaderContentLength: strconvI(hl)}
	for k, v := range header {
		h[k] = v
	}
	r := call(t, "POST", base+"/v2/models/mlp/infer", body, h)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	rhl, _ := protocol.ParseHeaderLength(r.header.Get(protocol.HeaderContentLength))
	resp, err := protocol.DecodeResponse(r.body, rhl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.ModelVersion
}

func TestTrafficPolicyRoutesUnversionedRequests(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	s, hs := start(t, repo, Options{})

	// The default: the latest ready version.
	if v := versionOf(t, hs.URL, nil); v != "2" {
		t.Fatalf("default version %s", v)
	}
	if r := setPolicy(t, adminBase(t, s, hs), deploy.Policy{Weights: map[int64]float64{1: 50, 2: 50}}, ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	counts := map[string]int{}
	for range 400 {
		counts[versionOf(t, hs.URL, nil)]++
	}
	if counts["1"] < 140 || counts["2"] < 140 {
		t.Fatalf("50/50 split gave %v", counts)
	}
	// A request that names its version is not routed.
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	r := call(t, "POST", hs.URL+"/v2/models/mlp/versions/1/infer", body, map[string]string{protocol.HeaderContentLength: strconvI(hl)})
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"model_version":"1"`)) {
		t.Fatalf("named version: %d %s", r.status, r.body)
	}

	// Sticky by header: a user always lands on the same arm.
	setPolicy(t, adminBase(t, s, hs), deploy.Policy{Weights: map[int64]float64{1: 50, 2: 50}, Sticky: "header:X-User-Id"}, "")
	arms := map[string]bool{}
	for u := range 20 {
		user := map[string]string{"X-User-Id": "user-" + strconvI(int64(u))}
		first := versionOf(t, hs.URL, user)
		for range 3 {
			if v := versionOf(t, hs.URL, user); v != first {
				t.Fatalf("user %d moved from version %s to %s", u, first, v)
			}
		}
		arms[first] = true
	}
	if len(arms) != 2 {
		t.Fatalf("20 users all on %v", arms)
	}

	// Read it back; bad policies are refused, naming the problem.
	var got deploy.Policy
	if r := call(t, "GET", adminBase(t, s, hs)+"/v2/admin/models/mlp/traffic", nil, nil); r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.Sticky != "header:X-User-Id" {
		t.Fatalf("policy read back: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"weights": map[string]float64{"7": 1}}, "version 7 is not loaded"},
		{map[string]any{"weights": map[string]float64{"1": 1}, "shadow": map[string]any{"version": 9, "fraction": 0.1}}, "shadow.version 9"},
		{map[string]any{"weights": map[string]float64{"1": 1}, "wieghts": 1}, "unknown field"},
	} {
		if r := setPolicy(t, adminBase(t, s, hs), tc.body, ""); r.status != 400 || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%v: %d %s, want 400 mentioning %q", tc.body, r.status, r.body, tc.want)
		}
	}
	if r := call(t, "DELETE", adminBase(t, s, hs)+"/v2/admin/models/mlp/traffic", nil, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	if v := versionOf(t, hs.URL, nil); v != "2" {
		t.Fatalf("after clearing: version %s", v)
	}
}

func TestGRPCFollowsTheTrafficPolicy(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	s, err := New(repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	defer s.Close()
	if err := s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 1, 2: 0}}, "test"); err != nil {
		t.Fatal(err)
	}
	c, _ := serveGRPC(t, s)
	x := image()[0]
	resp, err := c.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "mlp",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "FP32", Shape: x.Shape}}, RawInputContents: [][]byte{x.Data}})
	if err != nil || resp.ModelVersion != "1" {
		t.Fatalf("gRPC unversioned request: %v %v", resp, err)
	}
}

// With a token, admin calls need it; the token never reaches the logs.
func TestAdminEndpointsRefuseAnonymousCallers(t *testing.T) {
	const token = "s3cret-admin-token"
	var logs bytes.Buffer
	repo := openRepo(t, twoVersions(t))
	_, hs := start(t, repo, Options{AdminToken: token, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	policy := deploy.Policy{Weights: map[int64]float64{1: 1}}
	for _, tc := range []struct {
		name, token string
		status      int
	}{{"anonymous", "", 401}, {"wrong token", "guess", 401}, {"right token", token, 200}} {
		if r := setPolicy(t, hs.URL, policy, tc.token); r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	if r := call(t, "POST", hs.URL+"/v2/repository/models/mlp/unload", nil, nil); r.status != 401 {
		t.Errorf("anonymous unload: %d", r.status)
	}
	// The gRPC repository RPCs are admin calls too.
	s0, _ := start(t, repo, Options{AdminToken: token, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	gc, _ := serveGRPC(t, s0)
	for _, tc := range []struct {
		name, auth string
		want       codes.Code
	}{{"anonymous", "", codes.Unauthenticated}, {"wrong token", "Bearer guess", codes.Unauthenticated}, {"right token", "Bearer " + token, codes.OK}} {
		ctx := context.Background()
		if tc.auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tc.auth)
		}
		if _, err := gc.RepositoryModelLoad(ctx, &inferencepb.RepositoryModelLoadRequest{ModelName: "mlp"}); status.Code(err) != tc.want {
			t.Errorf("gRPC load, %s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := gc.RepositoryModelUnload(ctx, &inferencepb.RepositoryModelUnloadRequest{ModelName: "ghost"}); tc.want != codes.OK && status.Code(err) != tc.want {
			t.Errorf("gRPC unload, %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the admin token was logged")
	}
	if !strings.Contains(logs.String(), "traffic policy changed") || !strings.Contains(logs.String(), "admin request refused") {
		t.Fatalf("changes and refusals not logged:\n%s", logs.String())
	}

	// The token is needed on the admin listener too.
	as := httptest.NewServer(s0.AdminHandler())
	defer as.Close()
	if r := setPolicy(t, as.URL, policy, ""); r.status != 401 {
		t.Errorf("anonymous on the admin listener of a server with a token: %d", r.status)
	}
	if r := setPolicy(t, as.URL, policy, token); r.status != 200 {
		t.Errorf("token on the admin listener: %d %s", r.status, r.body)
	}
}

// Without a token the public port refuses the admin API from every
// caller, loopback ones too (a proxy on the host connects from loopback),
// naming the admin listener; the admin listener answers; trusting loopback
// brings back the loopback rule on the public port.
func TestAdminAPIWithoutTokenIsOnTheAdminListener(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	for _, tc := range []struct {
		name   string
		trust  bool
		admin  bool
		addr   string
		status int
	}{
		{"public, loopback", false, false, "127.0.0.1:4567", 403},
		{"public, remote", false, false, "10.1.2.3:4567", 403},
		{"admin listener", false, true, "127.0.0.1:4567", 200},
		{"trusted public, remote", true, false, "10.1.2.3:4567", 403},
		{"trusted public, loopback", true, false, "127.0.0.1:4567", 200},
		{"trusted public, IPv6 loopback", true, false, "[::1]:4567", 200},
	} {
		s, err := New(repo, Options{AdminTrustLoopback: tc.trust})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/v2/admin/models/mlp/traffic", nil)
		req.RemoteAddr = tc.addr
		rec := httptest.NewRecorder()
		if tc.admin {
			s.AdminHandler().ServeHTTP(rec, req)
		} else {
			s.Handler().ServeHTTP(rec, req)
		}
		s.Close()
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
		}
		if rec.Code == 403 && !tc.trust && !strings.Contains(rec.Body.String(), "admin listener") {
			t.Errorf("%s: the refusal does not name the admin listener: %s", tc.name, rec.Body)
		}
	}
	// Over real loopback connections: the public port refuses, the admin
	// listener answers.
	s, hs := start(t, nil, Options{})
	if r := call(t, "POST", hs.URL+"/v2/repository/models/mlp/unload", nil, nil); r.status != 403 {
		t.Fatalf("unload on the public port: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/unload", nil, nil); r.status != 200 {
		t.Fatalf("unload on the admin listener: %d %s", r.status, r.body)
	}
}

// A restarted server comes back with the policies it had.
func TestTrafficPoliciesSurviveRestart(t *testing.T) {
	dir, state := twoVersions(t), t.TempDir()
	repo := openRepo(t, dir)
	s, err := New(repo, Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 5, 2: 95}}, "test"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	repo.Close()

	repo2 := openRepo(t, dir)
	s2, hs := start(t, repo2, Options{StateDir: state})
	p, ok := s2.Policy("mlp")
	if !ok || p.Weights[1] != 5 || p.Weights[2] != 95 {
		t.Fatalf("restored %+v, %v", p, ok)
	}
	ms := httptest.NewServer(s2.MetricsHandler())
	defer ms.Close()
	if body := string(call(t, "GET", ms.URL, nil, nil).body); !strings.Contains(body, `infer_traffic_share{model="mlp",version="2"} 0.95`) {
		t.Fatalf("share metric missing:\n%s", body)
	}
	_ = hs
}

func strconvI(v int64) string { return strconv.FormatInt(v, 10) }

func putF32(b []byte, v float32) {
	t := tensor.New("", []int64{1}, []float32{v})
	copy(b, t.Data)
}

// Loading a newer version does not hand it the traffic: unversioned
// requests stay on the version that answered them, until a rollout.
func TestLoadOfANewVersionKeepsTrafficWhereItWas(t *testing.T) {
	dir := twoVersions(t)
	v2 := filepath.Join(dir, "mlp", "2")
	hidden := filepath.Join(t.TempDir(), "2")
	if err := os.Rename(v2, hidden); err != nil {
		t.Fatal(err)
	}
	repo := openRepo(t, dir)
	s, hs := start(t, repo, Options{})
	if v := versionOf(t, hs.URL, nil); v != "1" {
		t.Fatalf("before: version %s", v)
	}
	if err := os.Rename(hidden, v2); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", nil, nil); r.status != 200 {
		t.Fatalf("load: %d %s", r.status, r.body)
	}
	if !s.VersionReady("mlp", 2) {
		t.Fatal("version 2 not loaded")
	}
	for range 20 {
		if v := versionOf(t, hs.URL, nil); v != "1" {
			t.Fatalf("after the load of version 2, an unversioned request got version %s", v)
		}
	}
	if p, ok := s.Policy("mlp"); !ok || p.Weights[1] != 1 || len(p.Weights) != 1 {
		t.Fatalf("policy after the load %+v %v", p, ok)
	}
}

// A 95/5 canary over 10,000 real requests gives version 2 a share of 5% ± 1%.
func TestCanaryShareOverTenThousandRequests(t *testing.T) {
	repo := openRepo(t, twoVersions(t))
	s, hs := start(t, repo, Options{})
	if err := s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 95, 2: 5}}, "test"); err != nil {
		t.Fatal(err)
	}
	const n, clients = 10000, 8
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range clients {
		wg.Go(func() {
			for range n / clients {
				resp, err := httpClient.Do(inferRequest(context.Background(), hs.URL+"/v2/models/mlp/infer", body, hl))
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	v1, err1 := s.Metrics("mlp", 1)
	v2, err2 := s.Metrics("mlp", 2)
	if err1 != nil || err2 != nil || failed.Load() != 0 || v1.Requests+v2.Requests != n {
		t.Fatalf("%v %v: %d failed, %v + %v requests", err1, err2, failed.Load(), v1.Requests, v2.Requests)
	}
	if share := v2.Requests / n; share < 0.04 || share > 0.06 {
		t.Fatalf("version 2 got %.2f%% of %d requests, want 5%% ± 1%%", 100*share, n)
	}
	t.Logf("version 2: %.0f of %d requests", v2.Requests, n)
}
