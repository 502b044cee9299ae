package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/internal/testrepo"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

var variants = filepath.Join("..", "..", "testdata", "variants")

var (
	mlpFile    = filepath.Join(bundled, "mlp", "1", "model.onnx")
	faultyFile = filepath.Join(variants, "faulty.onnx")
	// faultyWarmup keeps warm-up clear of the faulty model's marks, which
	// are ones.
	faultyWarmup = "warmup: {data: zero}\n"
)

// faultyRequest is a faulty model's request: fail marks it to fail, stall
// to stall for that many thousand loop iterations.
func faultyRequest(fail bool, stall float32) []byte {
	x := []float32{0.25, 0.5, 0.75, 0.125}
	if fail {
		x[1] = 1
	}
	x[2] += stall
	body, _, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("x", []int64{1, 4}, x)}}).Encode(false)
	return body
}

func post(t *testing.T, client *http.Client, url string, body []byte) reply {
	t.Helper()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return reply{resp.StatusCode, resp.Header, b.Bytes()}
}

// A repeated request is answered from the cache, skipping the queue, with
// exactly the bytes of the first answer; /stats and the metrics count it.
func TestCacheHitIsTheSameBytes(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{
		"mlp":   {mlpFile, "cache: {enabled: true, max_bytes: 1048576}\n"},
		"short": {mlpFile, "cache: {enabled: true, ttl: 100ms}\n"},
	})
	s, hs := start(t, repo, Options{})
	image := tensor.New("image", []int64{1, 784}, make([]float32, 784))
	for i := range 784 {
		image.Data[4*i+1] = byte(i) // a distinct input
	}
	for _, binary := range []bool{true, false} {
		req := &protocol.InferRequest{ID: "same", Inputs: []tensor.Tensor{image}}
		first, _ := infer(t, hs.URL, "mlp", req, binary)
		second, _ := infer(t, hs.URL, "mlp", req, binary)
		if first.status != 200 || second.status != 200 || !bytes.Equal(first.body, second.body) {
			t.Fatalf("binary %v: the hit's body differs:\n%s\n%s", binary, first.body, second.body)
		}
		timing, _ := profile.ParseServerTiming(second.header.Get("Server-Timing"))
		if !strings.Contains(second.header.Get("Server-Timing"), "cache;dur=") || timing.Get(profile.Queue) != 0 || timing.Get(profile.Infer) != 0 {
			t.Fatalf("binary %v: the hit's Server-Timing %q: want a cache phase and no queue or infer", binary, second.header.Get("Server-Timing"))
		}
	}
	// A different id is a hit too (the id is no input), answered with its own id.
	other, resp := infer(t, hs.URL, "mlp", &protocol.InferRequest{ID: "other", Inputs: []tensor.Tensor{image}}, true)
	if other.status != 200 || resp.ID != "other" {
		t.Fatalf("another id: %d %+v", other.status, resp)
	}
	var stats struct {
		ModelStats []struct {
			InferenceStats map[string]struct{ Count int64 } `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal(call(t, "GET", hs.URL+"/v2/models/mlp/stats", nil, nil).body, &stats); err != nil {
		t.Fatal(err)
	}
	// One miss, then hits: the second binary request, both JSON ones (the
	// encoding is no input) and the other id.
	if st := stats.ModelStats[0].InferenceStats; st["cache_hit"].Count != 4 || st["cache_miss"].Count != 1 {
		t.Fatalf("stats: %d hits, %d misses; want 4 and 1", st["cache_hit"].Count, st["cache_miss"].Count)
	}
	if m := scrape(t, s); !strings.Contains(m, `infer_cache_requests_total{model="mlp",result="hit",version="1"} 4`) {
		t.Fatal("the metrics do not count the hits")
	}
	// An entry past its TTL is gone.
	req := &protocol.InferRequest{Inputs: []tensor.Tensor{image}}
	infer(t, hs.URL, "short", req, true)
	time.Sleep(150 * time.Millisecond)
	if r, _ := infer(t, hs.URL, "short", req, true); strings.Contains(r.header.Get("Server-Timing"), "queue;dur=0,") {
		t.Fatalf("past the TTL, answered from the cache: %s", r.header.Get("Server-Timing"))
	}
	m, _ := repo.Model("short", 1)
	if c := m.Stats().Cache; c.Hits != 0 || c.Misses != 2 {
		t.Fatalf("short: %d hits, %d misses; want 0 and 2", c.Hits, c.Misses)
	}
}

// A text model caches by string: a batch repeating a sentence encodes it
// once, a later request for it is not encoded again, and the answers are
// those of the model without a cache.
func TestEmbeddingCache(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(bundled, "text-encoder")
	for _, f := range []string{"1/model.onnx", "vocab.txt", "config.yaml"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"plain", "cached"} {
			if f == "config.yaml" && name == "cached" {
				data = append(data, "cache: {enabled: true}\n"...)
			}
			os.MkdirAll(filepath.Join(dir, name, "1"), 0o755)
			if err := os.WriteFile(filepath.Join(dir, name, f), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	repo, err := runner.Open(dir, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, hs := start(t, repo, Options{})
	texts := []string{"the cat sat on the mat", "a different sentence", "the cat sat on the mat"}
	ask := func(model string, texts ...string) []float32 {
		t.Helper()
		var data []byte
		for _, s := range texts {
			data = tensor.AppendUint(data, uint64(len(s)), 4)
			data = append(data, s...)
		}
		r, resp := infer(t, hs.URL, model, &protocol.InferRequest{Inputs: []tensor.Tensor{{Name: "text", DataType: tensor.Bytes, Shape: []int64{int64(len(texts))}, Data: data}}}, true)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", model, r.status, r.body)
		}
		v, err := tensor.Values[float32](resp.Outputs[0])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	got, want := ask("cached", texts...), ask("plain", texts...)
	for i := range want {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("element %d: %v cached, %v without a cache", i, got[i], want[i])
		}
	}
	if !slicesEqual(got[:128], got[256:]) {
		t.Fatal("the repeated sentence's rows differ")
	}
	m, _ := repo.Model("cached", 1)
	// Two distinct sentences encoded; the repeat counts as a hit.
	if c := m.Stats().Cache; c.Misses != 2 || c.Hits != 1 || m.Stats().Rows != 2 {
		t.Fatalf("after the first batch: %d misses, %d hits, %d rows run; want 2, 1 and 2", c.Misses, c.Hits, m.Stats().Rows)
	}
	again := ask("cached", "a different sentence")
	if !slicesEqual(again, got[128:256]) {
		t.Fatal("the cached sentence's answer differs")
	}
	if c := m.Stats().Cache; c.Hits != 2 || m.Stats().Rows != 2 {
		t.Fatalf("a cached sentence: %d hits, %d rows run; want it not encoded again", c.Hits, m.Stats().Rows)
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The breaker's window and open_for are read on synctest's clock: however
// slow the machine, the failures fall in one window and the probe comes
// exactly after open_for.
func TestCircuitBreakerOpensFallsBackAndCloses(t *testing.T) {
	dir := testrepo.Dir(t, map[string][2]string{
		"faulty": {faultyFile, faultyWarmup + `
max_batch_size: 8
cache: {enabled: true}
circuit_breaker: {enabled: true, window: 5s, min_requests: 5, failure_rate: 0.5, open_for: 1500ms}
fallback:
  - cache: true
  - model: backup
  - static: {outputs: [{name: y, datatype: FP32, shape: [1, 4], data: [0, 0, 0, 0]}]}
`},
		"backup": {faultyFile, faultyWarmup},
	})
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		h := s.Handler()
		post := func(body []byte) reply { return serve(h, "POST", "/v2/models/faulty/infer", body) }

		// A good request, answered and cached.
		good := faultyRequest(false, 0)
		first := post(good)
		if first.status != 200 || first.header.Get(FallbackHeader) != "" {
			t.Fatalf("a good request: %d %s %v", first.status, first.body, first.header)
		}
		// Answers from the cache say nothing of the model's health: they do
		// not count against the failures to come.
		for range 10 {
			if r := post(good); r.status != 200 {
				t.Fatalf("a cached request: %d %s", r.status, r.body)
			}
		}
		// (A hit's cache phase takes no time on the bubble's clock, so
		// Server-Timing leaves it out: the model's count tells.)
		if m, _ := s.Repository().Model("faulty", 1); m.Stats().Cache.Hits != 10 {
			t.Fatalf("%d of 10 repeats answered from the cache", m.Stats().Cache.Hits)
		}
		// Failures open the breaker: with the good one, 4 of 5 failed.
		for i := range 4 {
			if r := post(faultyRequest(true, 0)); r.status != 500 {
				t.Fatalf("failure %d: %d %s", i, r.status, r.body)
			}
		}
		// Open: the cached request comes from the cache, byte for byte...
		r := post(good)
		if r.status != 200 || r.header.Get(FallbackHeader) != "cache" || !bytes.Equal(r.body, first.body) {
			t.Fatalf("open, a cached request: %d %q %s, want the cache's %s", r.status, r.header.Get(FallbackHeader), r.body, first.body)
		}
		// ...another from the backup model...
		r = post(faultyRequest(false, 1))
		if r.status != 200 || r.header.Get(FallbackHeader) != "model:backup" {
			t.Fatalf("open, an uncached request: %d %q %s, want the backup model's answer", r.status, r.header.Get(FallbackHeader), r.body)
		}
		// ...and with the backup failing too, the static answer.
		r = post(faultyRequest(true, 0))
		if r.status != 200 || r.header.Get(FallbackHeader) != "static" || !strings.Contains(string(r.body), `"data":[0,0,0,0]`) {
			t.Fatalf("open, the backup failing: %d %q %s, want the static answer", r.status, r.header.Get(FallbackHeader), r.body)
		}
		metrics := scrape(t, s)
		for _, want := range []string{
			`infer_circuit_state{model="faulty",version="1"} 2`,
			`infer_fallback_total{model="faulty",version="1",via="cache"} 1`,
			`infer_fallback_total{model="faulty",version="1",via="model"} 1`,
			`infer_fallback_total{model="faulty",version="1",via="static"} 1`,
			`infer_circuit_transitions_total{model="faulty",to="open",version="1"} 1`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		// 1ms before open_for ends, still open; 1ms after it, a good probe
		// closes it again: answers come from the model itself.
		time.Sleep(1499 * time.Millisecond)
		if r = post(faultyRequest(false, 2)); r.header.Get(FallbackHeader) != "model:backup" {
			t.Fatalf("1ms before open_for ends: %d %q %s, want the backup's answer", r.status, r.header.Get(FallbackHeader), r.body)
		}
		time.Sleep(2 * time.Millisecond)
		r = post(faultyRequest(false, 3))
		if r.status != 200 || r.header.Get(FallbackHeader) != "" {
			t.Fatalf("the half-open probe: %d %q %s", r.status, r.header.Get(FallbackHeader), r.body)
		}
		if m := scrape(t, s); !strings.Contains(m, `infer_circuit_state{model="faulty",version="1"} 0`) {
			t.Fatal("a good probe did not close the breaker")
		}
		if r = post(faultyRequest(true, 0)); r.status != 500 {
			t.Fatalf("closed again, a failing request reaches the model: %d %s", r.status, r.body)
		}
	})
}

// serve sends one request to h in process.
func serve(h http.Handler, method, path string, body []byte) reply {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// Without any fallback that answers, an open breaker refuses with 503 and
// Retry-After, over HTTP and gRPC alike.
func TestOpenBreakerWithoutFallbackRefuses(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"faulty": {faultyFile, faultyWarmup +
		"circuit_breaker: {enabled: true, min_requests: 3, open_for: 7s}\nfallback: [{unavailable: {}}]\n"}})
	s, hs := start(t, repo, Options{})
	url := hs.URL + "/v2/models/faulty/infer"
	client := &http.Client{Timeout: 10 * time.Second}
	for range 3 {
		post(t, client, url, faultyRequest(true, 0))
	}
	r := post(t, client, url, faultyRequest(false, 0))
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get(FallbackHeader) != "unavailable" {
		t.Fatalf("open, no fallback: %d %v %s", r.status, r.header, r.body)
	}
	if secs, _ := strconv.Atoi(r.header.Get("Retry-After")); secs < 5 || secs > 7 {
		t.Fatalf("Retry-After %s, want the ~7s until the breaker half-opens", r.header.Get("Retry-After"))
	}
	// gRPC: UNAVAILABLE, with the same advice in the trailer.
	gc, _ := serveGRPC(t, s)
	var trailer metadata.MD
	_, err := gc.ModelInfer(context.Background(), requests.GRPC("faulty", []tensor.Tensor{tensor.New("x", []int64{1, 4}, []float32{0, 0, 0, 0})}, true), grpc.Trailer(&trailer))
	if code(err) != codes.Unavailable || len(trailer.Get("retry-after")) != 1 || trailer.Get(core.TrailerFallback)[0] != "unavailable" {
		t.Fatalf("gRPC, open: %v, trailer %v", err, trailer)
	}
}

// Fault injection is refused unless allowed; allowed, it adds latency and
// errors to one version only.
func TestFaultInjection(t *testing.T) {
	s, hs := start(t, nil, Options{})
	if err := s.SetFault("mlp", 1, &Fault{ErrorRate: 1}); err == nil {
		t.Fatal("a fault was injected into a server that does not allow it")
	}
	if r := call(t, "PUT", adminBase(t, s, hs)+"/v2/admin/models/mlp/versions/1/fault", []byte(`{"error_rate":1}`), nil); r.status != 403 {
		t.Fatalf("admin fault on a server that does not allow it: %d %s", r.status, r.body)
	}

	s, hs = start(t, nil, Options{AllowFaultInjection: true})
	if r := call(t, "PUT", adminBase(t, s, hs)+"/v2/admin/models/mlp/versions/1/fault", []byte(`{"latency":"150ms","error_rate":0}`), nil); r.status != 200 {
		t.Fatalf("set a latency: %d %s", r.status, r.body)
	}
	image := []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}
	began := time.Now()
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image}, true); r.status != 200 || time.Since(began) < 150*time.Millisecond {
		t.Fatalf("with 150ms of latency: %d in %v", r.status, time.Since(began))
	}
	if err := s.SetFault("mlp", 1, &Fault{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image}, true); r.status != 500 || !strings.Contains(string(r.body), "injected fault") {
		t.Fatalf("with every request failing: %d %s", r.status, r.body)
	}
	if r := call(t, "PUT", adminBase(t, s, hs)+"/v2/admin/models/mlp/versions/1/fault", []byte(`{"error_rate":2}`), nil); r.status != 400 {
		t.Fatalf("an error rate of 2: %d %s", r.status, r.body)
	}
	if r := call(t, "DELETE", adminBase(t, s, hs)+"/v2/admin/models/mlp/versions/1/fault", nil, nil); r.status != 200 {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image}, true); r.status != 200 {
		t.Fatalf("cleared: %d %s", r.status, r.body)
	}
}

// A request bigger than the model's bound is refused with 413 before it
// is queued.
func TestRequestBytesBound(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"mlp": {mlpFile, "max_request_bytes: 4096\n"}})
	_, hs := start(t, repo, Options{})
	two := &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{2, 784}, make([]float32, 2*784))}}
	if r, _ := infer(t, hs.URL, "mlp", two, true); r.status != 413 || !strings.Contains(string(r.body), "max_request_bytes 4096") {
		t.Fatalf("two rows over a 4 KiB bound: %d %s", r.status, r.body)
	}
	one := &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}
	if r, _ := infer(t, hs.URL, "mlp", one, true); r.status != 200 {
		t.Fatalf("one row within it: %d %s", r.status, r.body)
	}
}

// A corrupt model version fails to load, at start and on a later load,
// while the server keeps serving the versions and models that loaded.
func TestCorruptVersionFailsAloneToLoad(t *testing.T) {
	root := testrepo.Dir(t, map[string][2]string{"mlp": {mlpFile, ""}, "other": {mlpFile, ""}})
	repo, err := runner.Open(root, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, hs := start(t, repo, Options{})
	dir := filepath.Join(root, "mlp")
	image := &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}

	if err := os.MkdirAll(filepath.Join(dir, "2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "2", "model.onnx"), []byte("\x08\x07not an onnx graph at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", nil, nil); r.status != 400 || !strings.Contains(string(r.body), "2/model.onnx") {
		t.Fatalf("loading a corrupt version: %d %s, want 400 naming the file", r.status, r.body)
	}
	for _, model := range []string{"mlp", "other"} {
		if r, resp := infer(t, hs.URL, model, image, true); r.status != 200 || resp.ModelVersion != "1" {
			t.Fatalf("%s after the failed load: %d %s", model, r.status, r.body)
		}
	}
	var index []struct{ Name, Version, State, Reason string }
	if err := json.Unmarshal(call(t, "POST", hs.URL+"/v2/repository/index", nil, nil).body, &index); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, e := range index {
		states[e.Name+"/"+e.Version] = e.State
	}
	if states["mlp/1"] != runner.StateReady || states["mlp/2"] == runner.StateReady || states["other/1"] != runner.StateReady {
		t.Fatalf("index after the failed load: %v", states)
	}
}
