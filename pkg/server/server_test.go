package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"

	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/netlimit"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

var bundled = filepath.Join("..", "..", "testdata", "models")

func TestMain(m *testing.M) {
	runner.ServeHostIfChild()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if _, err := runner.InitRuntime(""); err != nil {
		fmt.Fprintln(os.Stderr, "server tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	// Every goroutine the server starts stops with it: none may be left.
	goleak.VerifyTestMain(m, fasthttpGoroutines...)
}

// fasthttpGoroutines are the goroutines fasthttp leaves behind a stopped
// server for a while: its worker pool's cleaner ends within its sleep
// (10 s), and the clock of its Date header runs for the process.
var fasthttpGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
}

// start serves repo (the bundled models when nil) on a loopback port,
// through the HTTP inference port's own server (HTTPFront).
func start(t *testing.T, repo *runner.Repository, opts Options) (*Server, *frontServer) {
	t.Helper()
	if repo == nil {
		var err error
		if repo, err = runner.Open(bundled, runner.LoadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFront(t, s)
	t.Cleanup(func() { hs.Close(); s.Close(); repo.Close() })
	return s, hs
}

// frontServer is a Server's HTTP inference port (HTTPFront) on a loopback
// port, as the tests reach it.
type frontServer struct {
	URL      string
	Listener net.Listener
	fs       *fasthttp.Server
	done     chan error
	once     sync.Once
}

func serveFront(t *testing.T, s *Server) *frontServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontServer{URL: "http://" + ln.Addr().String(), Listener: ln, fs: s.HTTPFront(), done: make(chan error, 1)}
	// Within a connection budget, as Serve serves it.
	limited := netlimit.Listen(ln, netlimit.NewBudget(DefaultMaxConnections))
	go func() { f.done <- f.fs.Serve(limited) }()
	return f
}

// Close stops the server, closing its idle connections and waiting for
// the others' requests.
func (f *frontServer) Close() {
	f.once.Do(func() {
		_ = f.fs.Shutdown()
		<-f.done
	})
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url string, body []byte, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// inferRequest is a binary-data infer request bound to ctx.
func inferRequest(ctx context.Context, url string, body []byte, hl int64) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
	return req
}

// infer posts req to model (binary: inputs as binary data) and decodes the
// response.
func infer(t *testing.T, base, model string, req *protocol.InferRequest, binary bool) (reply, *protocol.InferResponse) {
	t.Helper()
	body, hl, err := req.Encode(binary)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	if hl >= 0 {
		h[protocol.HeaderContentLength] = strconv.FormatInt(hl, 10)
	}
	r := call(t, "POST", base+"/v2/models/"+model+"/infer", body, h)
	if r.status != http.StatusOK {
		return r, nil
	}
	rhl, err := protocol.ParseHeaderLength(r.header.Get(protocol.HeaderContentLength))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := protocol.DecodeResponse(r.body, rhl)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	return r, resp
}

func TestHealthAndMetadata(t *testing.T) {
	s, hs := start(t, nil, Options{Version: "test"})
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/mlp/ready", "/v2/models/mlp/versions/1/ready"} {
		if r := call(t, "GET", hs.URL+path, nil, nil); r.status != 200 {
			t.Errorf("GET %s: %d", path, r.status)
		}
	}
	var sm protocol.ServerMetadata
	r := call(t, "GET", hs.URL+"/v2", nil, nil)
	if err := json.Unmarshal(r.body, &sm); err != nil || sm.Name != "infer" || sm.Version != "test" || !strings.Contains(strings.Join(sm.Extensions, ","), "binary_tensor_data") {
		t.Fatalf("server metadata %s", r.body)
	}
	var mm protocol.ModelMetadata
	r = call(t, "GET", hs.URL+"/v2/models/text-encoder/versions/1", nil, nil)
	if err := json.Unmarshal(r.body, &mm); err != nil || mm.Platform != "onnxruntime_onnx" || mm.Versions[0] != "1" ||
		mm.Inputs[0].Name != "text" || mm.Inputs[0].Datatype != "BYTES" || fmt.Sprint(mm.Inputs[0].Shape) != "[-1]" || mm.Outputs[0].Shape[1] != 128 {
		t.Fatalf("model metadata %s", r.body)
	}
	for _, path := range []string{"/v2/models/nope", "/v2/models/mlp/versions/7", "/v2/models/mlp/versions/x", "/v2/nothing"} {
		r := call(t, "GET", path2(hs.URL, path), nil, nil)
		var e protocol.Error
		if r.status != 404 || json.Unmarshal(r.body, &e) != nil || e.Error == "" {
			t.Errorf("GET %s: %d %s, want 404 with an error body", path, r.status, r.body)
		}
	}
	r = call(t, "GET", hs.URL+"/v2/models/mlp/config", nil, nil)
	var cfg map[string]any
	if err := json.Unmarshal(r.body, &cfg); err != nil || cfg["max_batch_size"] != float64(64) || cfg["name"] != "mlp" || cfg["backend"] != "onnxruntime" {
		t.Fatalf("config %s", r.body)
	}

	s.Drain()
	if r := call(t, "GET", hs.URL+"/v2/health/ready", nil, nil); r.status != 503 {
		t.Fatalf("ready while draining: %d", r.status)
	}
	if r := call(t, "GET", hs.URL+"/v2/health/live", nil, nil); r.status != 200 {
		t.Fatalf("live while draining: %d", r.status)
	}
	// Not ready, yet serving: a load balancer takes a while to notice. The
	// answer closes its connection (the client reads Connection: close
	// into resp.Close).
	body, _, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("matrix", []int64{2, 3}, make([]float32, 6))}}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(hs.URL+"/v2/models/fixed-shape/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("infer while draining: %d, closing the connection %v; want 200 and closing", resp.StatusCode, resp.Close)
	}
}

func path2(base, p string) string { return base + p }

// Every bundled model answers over JSON and binary bodies exactly as the
// runner does in process.
func TestInferMatchesRunner(t *testing.T) {
	_, hs := start(t, nil, Options{})
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"mlp", "text-encoder", "multi-io", "fixed-shape"} {
		m, _ := repo.Model(name, 0)
		var inputs []tensor.Tensor
		for _, spec := range runner.SyntheticInputs(m.Metadata().Inputs, 2, *m.Config().MaxBatchSize > 0) {
			t := tensor.Random(spec.Name, spec.DataType, spec.Shape, r)
			if spec.DataType == tensor.Int64 { // token ids ([CLS], "the") and masks alike
				ids := make([]int64, tensor.Elements(spec.Shape))
				for i := range ids {
					ids[i] = []int64{2, 1003}[i%2]
				}
				t = tensor.New(spec.Name, spec.Shape, ids)
			}
			inputs = append(inputs, t)
		}
		want, err := m.Infer(context.Background(), &runner.Request{Inputs: inputs})
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []struct {
			binIn, binOut bool
		}{{false, false}, {true, true}, {true, false}, {false, true}} {
			t.Run(fmt.Sprintf("%s/in-binary=%v/out-binary=%v", name, mode.binIn, mode.binOut), func(t *testing.T) {
				req := &protocol.InferRequest{ID: "req-" + name, Inputs: inputs, BinaryOutput: mode.binOut}
				rep, resp := infer(t, hs.URL, name, req, mode.binIn)
				if resp == nil {
					t.Fatalf("%d %s", rep.status, rep.body)
				}
				if resp.ID != req.ID || resp.ModelName != name || resp.ModelVersion != "1" {
					t.Fatalf("response %+v", resp)
				}
				if mode.binOut != (rep.header.Get(protocol.HeaderContentLength) != "") {
					t.Fatalf("binary output %v but header %q", mode.binOut, rep.header.Get(protocol.HeaderContentLength))
				}
				for i, w := range want.Outputs {
					g := resp.Outputs[i]
					if g.Name != w.Name || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) || !bytes.Equal(g.Data, w.Data) {
						t.Fatalf("output %s: %v % x, want %v % x", w.Name, g.Shape, g.Data[:min(16, len(g.Data))], w.Shape, w.Data[:min(16, len(w.Data))])
					}
				}
				timing, ok := profile.ParseServerTiming(rep.header.Get("Server-Timing"))
				if !ok || timing.Get(profile.Infer) <= 0 || timing.Get(profile.Total) < timing.Get(profile.Infer)+timing.Get(profile.Queue) {
					t.Fatalf("Server-Timing %q", rep.header.Get("Server-Timing"))
				}
				if n, err := strconv.Atoi(rep.header.Get(BatchSizeHeader)); err != nil || n < 1 {
					t.Fatalf("%s %q", BatchSizeHeader, rep.header.Get(BatchSizeHeader))
				}
			})
		}
	}
}

func TestRequestedOutputs(t *testing.T) {
	_, hs := start(t, nil, Options{})
	inputs := runner.SyntheticInputs([]runner.TensorSpec{
		{Name: "ids", DataType: tensor.Int64, Shape: []int64{-1, 4}}, {Name: "flags", DataType: tensor.Bool, Shape: []int64{-1, 4}},
		{Name: "halfs", DataType: tensor.FP16, Shape: []int64{-1, 4}}, {Name: "wide", DataType: tensor.FP64, Shape: []int64{-1, 4}},
		{Name: "bytes", DataType: tensor.Uint8, Shape: []int64{-1, 4}}}, 1, true)
	req := &protocol.InferRequest{Inputs: inputs, Outputs: []protocol.RequestedOutput{{Name: "bytes_inverted", Binary: true}, {Name: "flags_negated"}}}
	rep, resp := infer(t, hs.URL, "multi-io", req, false)
	if resp == nil {
		t.Fatalf("%d %s", rep.status, rep.body)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "bytes_inverted" || !bytes.Equal(resp.Outputs[0].Data, []byte{255, 255, 255, 255}) ||
		!bytes.Equal(resp.Outputs[1].Data, []byte{1, 1, 1, 1}) {
		t.Fatalf("outputs %+v", resp.Outputs)
	}
	// The first output travelled as binary data, the second as JSON.
	if !bytes.Contains(rep.body, []byte(`"data":[true,true,true,true]`)) || !bytes.Contains(rep.body, []byte(`"binary_data_size":4`)) {
		t.Fatalf("body %s", rep.body)
	}
}

func TestErrorStatuses(t *testing.T) {
	dir := t.TempDir()
	data, _ := os.ReadFile(filepath.Join(bundled, "mlp", "1", "model.onnx"))
	// "slow" holds requests for a minute unless 64 arrive: queue of one.
	for _, p := range []struct{ file, content string }{
		{"slow/1/model.onnx", string(data)},
		{"slow/config.yaml", "max_batch_size: 64\ndynamic_batching: {max_queue_delay: 1m, max_queue_size: 1}\n"},
		{"mlp/1/model.onnx", string(data)},
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p.file)), 0o755)
		os.WriteFile(filepath.Join(dir, p.file), []byte(p.content), 0o644)
	}
	repo, err := runner.Open(dir, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, hs := start(t, repo, Options{MaxBodyBytes: 16 << 10})
	image := func() []tensor.Tensor {
		return []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}
	}

	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"malformed JSON", `{"inputs":`, 400, "request JSON"},
		{"wrong shape", `{"inputs":[{"name":"image","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, 400, `input \"image\": shape [1 3]`},
		{"wrong datatype", `{"inputs":[{"name":"image","shape":[1,1],"datatype":"FP64","data":[1]}]}`, 400, "datatype FP64"},
		{"element count", `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[1]}]}`, 400, `shape [1 784] declares 784 elements, data holds 1`},
		{"unknown output", `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":0}}],"outputs":[{"name":"logits"}]}`, 400, ""},
		{"too large", `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 8000) + `0]}]}`, 413, "16384"},
	} {
		r := call(t, "POST", hs.URL+"/v2/models/mlp/infer", []byte(tc.body), nil)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) || !bytes.HasPrefix(r.body, []byte(`{"error":`)) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, r.status, r.body, tc.status, tc.want)
		}
	}

	// 504: the request's own timeout parameter (microseconds) passes in the queue.
	req := &protocol.InferRequest{Inputs: image(), Parameters: protocol.Parameters{protocol.ParamTimeout: 20000}}
	if r, _ := infer(t, hs.URL, "slow", req, true); r.status != 504 {
		t.Fatalf("timeout: %d %s", r.status, r.body)
	}
	// 429: one request waits in the queue, the next finds it full.
	held := make(chan int, 1)
	go func() {
		r, _ := infer(t, hs.URL, "slow", &protocol.InferRequest{Inputs: image(), Parameters: protocol.Parameters{protocol.ParamTimeout: 3e6}}, true)
		held <- r.status
	}()
	m, _ := repo.Model("slow", 0)
	for m.Stats().QueueLength == 0 {
		runtimeGosched()
	}
	if r, _ := infer(t, hs.URL, "slow", &protocol.InferRequest{Inputs: image()}, true); r.status != 429 {
		t.Fatalf("queue full: %d %s", r.status, r.body)
	}
	if status := <-held; status != 504 {
		t.Fatalf("held request: %d, want 504 at its 3s timeout", status)
	}
	// A client that gives up is counted as canceled, not as a server error.
	ctx, cancel := context.WithCancel(context.Background())
	body, hl, _ := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	gone := make(chan error, 1)
	go func() {
		resp, err := httpClient.Do(inferRequest(ctx, hs.URL+"/v2/models/slow/infer", body, hl))
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	// Cancel once the server is handling it (the queue's length may still
	// count the held request, expired but not yet swept).
	inflight := `infer_inflight_requests{model="slow",version="1"} 1`
	for deadline := time.Now().Add(10 * time.Second); ; runtimeGosched() {
		rec := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), inflight) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request never reached the server: no %s", inflight)
		}
	}
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	canceled := `infer_requests_total{model="slow",outcome="canceled",protocol="http",version="1"} 1`
	for deadline := time.Now().Add(5 * time.Second); ; runtimeGosched() {
		rec := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if text := rec.Body.String(); strings.Contains(text, canceled) {
			if strings.Contains(text, `model="slow",outcome="error"`) {
				t.Fatal("a canceled request counted as an error")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in\n%s", canceled, rec.Body)
		}
	}
	// 503 once unloaded, 200 again after a load.
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/unload", nil, nil); r.status != 200 {
		t.Fatalf("unload: %d %s", r.status, r.body)
	}
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image()}, true); r.status != 503 {
		t.Fatalf("unloaded model: %d %s", r.status, r.body)
	}
	var idx []protocol.IndexEntry
	r := call(t, "POST", hs.URL+"/v2/repository/index", nil, nil)
	if json.Unmarshal(r.body, &idx) != nil || !strings.Contains(string(r.body), `"state":"UNAVAILABLE"`) {
		t.Fatalf("index %s", r.body)
	}
	// Triton's {"ready": true} asks for the versions ready to serve alone.
	r = call(t, "POST", hs.URL+"/v2/repository/index", []byte(`{"ready":true}`), nil)
	var ready []protocol.IndexEntry
	if json.Unmarshal(r.body, &ready) != nil || len(ready) == 0 || len(ready) >= len(idx) || strings.Contains(string(r.body), `"UNAVAILABLE"`) {
		t.Fatalf("index of the ready (%d of %d): %s", len(ready), len(idx), r.body)
	}
	if r := call(t, "POST", hs.URL+"/v2/repository/index", []byte(`{"ready":"yes"}`), nil); r.status != 400 || !strings.Contains(string(r.body), "ready") {
		t.Fatalf(`index with {"ready":"yes"}: %d %s`, r.status, r.body)
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", nil, nil); r.status != 200 {
		t.Fatalf("load: %d %s", r.status, r.body)
	}
	if r, _ := infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: image()}, true); r.status != 200 {
		t.Fatalf("reloaded model: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/ghost/load", nil, nil); r.status != 404 {
		t.Fatalf("load of a missing model: %d %s", r.status, r.body)
	}
	// A name no model can have is the caller's error, quoted cut.
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/"+strings.Repeat("m", 3000)+"/unload", nil, nil); r.status != 400 || len(r.body) > 200 {
		t.Fatalf("unload of a name of 3000 bytes: %d %s", r.status, r.body)
	}
	// Triton's load parameters are refused by name, never answered 200
	// with the override ignored; a body that is not one is a 400 too.
	for body, want := range map[string]string{
		`{"parameters":{"config":"{\"max_batch_size\": 1}"}}`: "parameters.config: a configuration override is not taken here",
		`{"parameters":{"file:1/model.onnx":"AAAA"}}`:         "parameters.file:1/model.onnx: model files are not taken in the request",
		`{"parameters":{"unload_dependents":true}}`:           "parameters.unload_dependents: no such load parameter",
		`{{{{`:                 "the body: want none, or {",
		`{"parameters":{}} {}`: "more after its JSON object",
		`{"model":"mlp"}`:      "unknown field",
	} {
		if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", []byte(body), nil); r.status != 400 || !strings.Contains(string(r.body), want) {
			t.Errorf("load with %s: %d %s, want 400 naming %q", body, r.status, r.body, want)
		}
	}
	if r := call(t, "POST", adminBase(t, s, hs)+"/v2/repository/models/mlp/load", []byte(`{"parameters":{}}`), nil); r.status != 200 {
		t.Fatalf("load with no parameters: %d %s", r.status, r.body)
	}
	// An endpoint asked with a method it does not take is a 405 naming
	// the methods it does (Allow), not a 404 that says it does not exist.
	if r := call(t, "GET", hs.URL+"/v2/models/mlp/infer", nil, nil); r.status != 405 || r.header.Get("Allow") != "POST" || !strings.Contains(string(r.body), "the endpoint takes POST") {
		t.Errorf("GET of the inference endpoint: %d %v %s, want 405 allowing POST", r.status, r.header.Get("Allow"), r.body)
	}
	if r := call(t, "GET", hs.URL+"/v2/no/such/thing", nil, nil); r.status != 404 {
		t.Errorf("an unknown path: %d %s, want 404", r.status, r.body)
	}
}

func TestStatsAndMetrics(t *testing.T) {
	s, hs := start(t, nil, Options{})
	const n = 16
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			infer(t, hs.URL, "mlp", &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}, true)
		})
	}
	wg.Wait()
	r := call(t, "GET", hs.URL+"/v2/models/mlp/stats", nil, nil)
	var st struct {
		ModelStats []httpapi.ModelStats `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || len(st.ModelStats) != 1 {
		t.Fatalf("stats %s", r.body)
	}
	ms := st.ModelStats[0]
	is := ms.InferenceStats
	if ms.InferenceCount != n || is["success"].Count != n || is["compute_infer"].Ns <= 0 || is["queue"].Count != n || ms.ExecutionCount < 1 || ms.LastInference == 0 {
		t.Fatalf("stats %s", r.body)
	}
	if r := call(t, "GET", hs.URL+"/v2/models/stats", nil, nil); !strings.Contains(string(r.body), `"name":"text-encoder"`) {
		t.Fatalf("all stats %s", r.body)
	}

	ms2 := httptest.NewServer(s.MetricsHandler())
	defer ms2.Close()
	body := string(call(t, "GET", ms2.URL, nil, nil).body)
	for _, want := range []string{
		`infer_requests_total{model="mlp",outcome="success",protocol="http",version="1"} 16`,
		`infer_request_duration_seconds_count{model="mlp",phase="infer",version="1"} 16`,
		`infer_inferences_total{model="mlp",version="1"} 16`,
		`infer_batch_size_sum{model="mlp",version="1"} 16`,
		`infer_queue_requests{model="mlp",version="1"} 0`,
		`infer_model_ready{model="fixed-shape",version="1"} 1`,
		`infer_model_load_seconds{model="text-encoder",version="1"}`,
		`process_resident_memory_bytes`,
		`infer_cost_usd_total{model="mlp",version="1"}`,
		`infer_cost_per_request_usd{model="mlp",version="1"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// mlp's config prices an instance at $0.10 an hour: the cost is that
	// price for the busy seconds, shared by the 16 requests.
	busy, cost, perReq := metricValue(t, body, `infer_execution_seconds_total{model="mlp",version="1"}`),
		metricValue(t, body, `infer_cost_usd_total{model="mlp",version="1"}`),
		metricValue(t, body, `infer_cost_per_request_usd{model="mlp",version="1"}`)
	if want := 0.10 * busy / 3600; busy <= 0 || math.Abs(cost-want) > 1e-12 || math.Abs(perReq-want/16) > 1e-12 {
		t.Fatalf("busy %gs: cost %g (want %g), per request %g (want %g)", busy, cost, want, perReq, want/16)
	}
}

func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}
