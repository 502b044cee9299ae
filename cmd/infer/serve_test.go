package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// startServe runs `infer serve` on the bundled models on loopback ports
// and returns the HTTP and gRPC addresses, a stop function, and the
// channel runServe's result arrives on.
func startServe(t *testing.T, o serveOptions) (string, string, context.CancelFunc, chan error) {
	t.Helper()
	addrs, cancel, done := startServeAddrs(t, o)
	return addrs["HTTP"], addrs["gRPC"], cancel, done
}

// startServeAddrs starts serve on free loopback ports and returns its
// listeners' addresses by name (HTTP, gRPC, metrics).
func startServeAddrs(t *testing.T, o serveOptions) (map[string]string, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	o.host = "127.0.0.1"
	if o.gracePeriod == 0 {
		o.gracePeriod = 10 * time.Second
	}
	if o.drainDelay == 0 {
		o.drainDelay = 300 * time.Millisecond
	}
	ports := freePorts(t, 4)
	o.httpPort, o.grpcPort, o.metricsPort, o.adminPort = ports[0], ports[1], ports[2], ports[3]
	o.listening = func(addrs map[string]string) { ready <- addrs }
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, &globalOptions{}, o, io.Discard) }()
	select {
	case a := <-ready:
		return a, cancel, done
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	return nil, cancel, done
}

// A SIGTERM under load: every request the server accepted is answered in
// full, those in flight when the drain began included, and those sent
// during the drain delay, while the server reports itself not ready but
// serves (with Connection: close); none is cut off; serve returns nil
// (exit 0). (These clients keep dialling past the delay, which a load
// balancer that saw the readiness would not: a new connection the kernel
// queued but the server never accepted is reset when the port closes,
// with its request unread. A connection the server accepted is never cut.)
func TestShutdownUnderLoadAnswersEveryAcceptedRequest(t *testing.T) {
	addr, _, stop, done := startServe(t, serveOptions{})
	body, hl, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/v2/models/mlp/infer"
	client := &http.Client{Timeout: 30 * time.Second}

	var ok, refused, closed atomic.Int64
	var mu sync.Mutex
	var failures []string
	deadline := time.Now().Add(20 * time.Second) // the loop's bound
	var wg sync.WaitGroup
	stopping := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			for n := 0; n < 5000 && time.Now().Before(deadline); n++ {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
				var reused bool
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
				}))
				resp, err := client.Do(req)
				if err != nil {
					select {
					case <-stopping:
						// Not accepted: the port is closed; Shutdown closed
						// this idle keep-alive connection as the request left
						// (it closes only connections with no request in
						// flight); or a new connection the server never
						// accepted was reset with the port.
						if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "server closed idle connection") ||
							!reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
							closed.Add(1)
							return
						}
					default:
					}
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					mu.Lock()
					failures = append(failures, "cut off: "+err.Error())
					mu.Unlock()
				case resp.StatusCode == 200:
					rhl, _ := protocol.ParseHeaderLength(resp.Header.Get(protocol.HeaderContentLength))
					if _, err := protocol.DecodeResponse(b, rhl); err != nil {
						mu.Lock()
						failures = append(failures, "incomplete response: "+err.Error())
						mu.Unlock()
					}
					ok.Add(1)
				case resp.StatusCode == 503:
					refused.Add(1) // never: a draining server still serves
					mu.Lock()
					failures = append(failures, "refused while draining: "+string(b))
					mu.Unlock()
					return
				default:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("status %d: %s", resp.StatusCode, b))
					mu.Unlock()
				}
			}
		})
	}
	for ok.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	close(stopping)
	stop() // what SIGTERM does through the command's context
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v, want nil (exit 0)", err)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	t.Logf("answered %d, refused %d, port closed for %d", ok.Load(), refused.Load(), closed.Load())
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		o    serveOptions
		want string
	}{
		{serveOptions{httpPort: 70000, metricsPort: 8002}, "--http-port 70000"},
		{serveOptions{httpPort: 0, grpcPort: 0, metricsPort: 8002}, "nothing to serve"},
		{serveOptions{httpPort: 9000, grpcPort: 9001, metricsPort: 9000}, "both 9000"},
		{serveOptions{httpPort: 9000, faults: []string{"mlp:1:errors=50%"}}, "add --allow-fault-injection"},
		{serveOptions{httpPort: 9000, allowFaults: true, faults: []string{"mlp:one:errors=50%"}}, `version "one"`},
		{serveOptions{httpPort: 9000, allowFaults: true, faults: []string{"mlp:1:errors=50"}}, `errors "50"`},
		{serveOptions{httpPort: 9000, allowFaults: true, faults: []string{"mlp:1:latency=soon"}}, `latency "soon"`},
		{serveOptions{httpPort: 9000, allowFaults: true, faults: []string{"mlp:1:jitter=1ms"}}, `unknown setting "jitter"`},
		{serveOptions{httpPort: 9000, metricsCompat: "prometheus"}, `--metrics-compat: metrics compatibility "prometheus": want triton or none`},
	} {
		if err := runServe(context.Background(), &globalOptions{}, tc.o, io.Discard); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.o, err, tc.want)
		}
	}
}

// One serve process answers the same model over HTTP and gRPC, and the
// gRPC server stops gracefully with the rest.
func TestServeSpeaksHTTPAndGRPC(t *testing.T) {
	httpAddr, grpcAddr, stop, done := startServe(t, serveOptions{})
	resp, err := http.Get("http://" + httpAddr + "/v2/health/ready")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP ready: %v %v", resp, err)
	}
	resp.Body.Close()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inferencepb.NewGRPCInferenceServiceClient(conn)
	x := tensor.New("matrix", []int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	r, err := c.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "fixed-shape",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "matrix", Datatype: "FP32", Shape: x.Shape}},
		RawInputContents: [][]byte{x.Data}})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := tensor.Values[float32](tensor.Tensor{Name: "y", DataType: tensor.FP32, Data: r.RawOutputContents[0]})
	if fmt.Sprint(y) != "[10 40 20 50 30 60]" {
		t.Fatalf("gRPC output %v", y)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

func TestServeConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(path, []byte("http_port: 9100\ngrpc_port: 0\ndefault_timeout: 250ms\nmodel_repository: ./models\ndevice: cuda:1\nread_header_timeout: 3s\nread_timeout: 20s\nidle_timeout: 1m\n"), 0o644)
	o := serveOptions{httpPort: 8000, grpcPort: 8001, metricsPort: 8002}
	given := map[string]bool{"http-port": true} // --http-port was on the command line
	o.httpPort = 7000
	if err := o.applyConfig(path, func(f string) bool { return given[f] }); err != nil {
		t.Fatal(err)
	}
	if o.httpPort != 7000 || o.grpcPort != 0 || o.metricsPort != 8002 || o.defaultTimeout != 250*time.Millisecond || o.path != "./models" || o.device != "cuda:1" ||
		o.readHeaderTimeout != 3*time.Second || o.readTimeout != 20*time.Second || o.idleTimeout != time.Minute {
		t.Fatalf("options %+v", o)
	}
	os.WriteFile(path, []byte("http_prot: 9100\n"), 0o644)
	if err := o.applyConfig(path, func(string) bool { return false }); err == nil || !strings.Contains(err.Error(), "line 1: http_prot: no such key (the keys here are model_repository, host, http_port,") {
		t.Fatalf("misspelt key: %v", err)
	}
	// A value of the wrong form is named by its key and the form wanted,
	// never by a Go type.
	os.WriteFile(path, []byte("http_port: eight\ndrain_delay: 5\n"), 0o644)
	err := o.applyConfig(path, func(string) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "line 1: http_port: `eight` is not a whole number") ||
		!strings.Contains(err.Error(), "line 2: drain_delay: `5` is not a duration such as 500ms") || strings.Contains(err.Error(), "time.Duration") {
		t.Fatalf("values of the wrong form: %v", err)
	}
	out, err := run(t, "serve", "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing config: %v %s", err, out)
	}
}

// --device names a bad device, or one this runtime cannot use: either way
// a clear error before anything listens.
func TestServeDevice(t *testing.T) {
	out, err := run(t, "serve", "--device", "gpu0")
	if err == nil || !strings.Contains(err.Error(), `--device: device "gpu0": want cpu, cuda:N or tensorrt:N`) {
		t.Fatalf("--device gpu0: %v\n%s", err, out)
	}
	dir := t.TempDir()
	model, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mlp.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "models", "run", filepath.Join(dir, "mlp.onnx"), "--device", "cuda:0")
	if err == nil || !strings.Contains(out, "cuda:0") || !strings.Contains(err.Error(), "no model could be loaded") {
		t.Fatalf("models run --device cuda:0 on a CPU runtime: %v\n%s", err, out)
	}
	port := strconv.Itoa(freePorts(t, 1)[0]) // not the default ports, which another server may hold
	out, err = run(t, "serve", filepath.Join(dir, "mlp.onnx"), "--device", "cuda:0", "--strict-model-control",
		"--host", "127.0.0.1", "--http-port", port, "--grpc-port", "0", "--metrics-port", "0", "--admin-port", "0")
	if err == nil || !strings.Contains(err.Error(), "--strict-model-control") || !strings.Contains(err.Error(), "cuda:0") {
		t.Fatalf("serve --strict-model-control --device cuda:0 on a CPU runtime: %v\n%s", err, out)
	}
	if out, err := run(t, "models", "run", filepath.Join(dir, "mlp.onnx"), "--device", "cpu", "--requests", "4"); err != nil || !strings.Contains(out, "mlp (version 1, cpu") {
		t.Fatalf("models run --device cpu: %v\n%s", err, out)
	}
}

// A model that fails to load never keeps the server from starting: it is
// UNAVAILABLE with its reason, the others serve, and readiness says so.
func TestServeStartsBesideAModelThatFailedToLoad(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"mlp":    filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"),
		"broken": filepath.Join("..", "..", "testdata", "faults", "slow-load.onnx"),
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if name == "broken" {
			data = data[:len(data)/2] // a truncated file
		}
		if err := os.MkdirAll(filepath.Join(dir, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "1", "model.onnx"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr, _, stop, done := startServe(t, serveOptions{path: dir})
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	resp, err := http.Post("http://"+addr+"/v2/repository/index", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	index, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(index), `"broken"`) || !strings.Contains(string(index), "UNAVAILABLE") || !strings.Contains(string(index), "malformed") {
		t.Errorf("index %s: want broken UNAVAILABLE with its reason", index)
	}
	body := `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0,", 783) + `0]}]}`
	resp, err = http.Post("http://"+addr+"/v2/models/mlp/infer", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("mlp beside the broken model: %s", resp.Status)
	}
}

// A port in use stops the start before any model loads: the repository
// here does not exist, and the port is what the error names.
func TestServeRefusesAPortInUseBeforeLoading(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	err = runServe(context.Background(), &globalOptions{}, serveOptions{path: filepath.Join(t.TempDir(), "no-such-repository"),
		host: "127.0.0.1", httpPort: freePort(t), grpcPort: port}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("--grpc-port %d", port)) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("serve with --grpc-port in use: %v, want an error naming --grpc-port before the repository", err)
	}
}

// The admin API is on its own loopback port: the public port refuses it
// without a token, the admin port answers; a token opens the public port
// to its holders; an admin port on another address needs a token.
func TestServeAdminPort(t *testing.T) {
	addrs, stop, done := startServeAddrs(t, serveOptions{})
	status := func(method, url, token string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("GET", "http://"+addrs["HTTP"]+"/v2/admin/models/mlp/traffic", ""); got != 403 {
		t.Errorf("admin on the public port without a token: %d", got)
	}
	if got := status("GET", "http://"+addrs["admin"]+"/v2/admin/models/mlp/traffic", ""); got != 200 {
		t.Errorf("admin on the admin port: %d", got)
	}
	if host, _, _ := net.SplitHostPort(addrs["admin"]); host != "127.0.0.1" {
		t.Errorf("admin port on %s, want loopback", addrs["admin"])
	}
	stop()
	<-done

	t.Setenv(adminTokenEnv, "s3cret")
	addrs, stop, done = startServeAddrs(t, serveOptions{})
	defer func() { stop(); <-done }()
	for _, base := range []string{addrs["HTTP"], addrs["admin"]} {
		if got := status("GET", "http://"+base+"/v2/admin/models/mlp/traffic", ""); got != 401 {
			t.Errorf("%s without the token: %d", base, got)
		}
		if got := status("GET", "http://"+base+"/v2/admin/models/mlp/traffic", "s3cret"); got != 200 {
			t.Errorf("%s with the token: %d", base, got)
		}
	}
	t.Setenv(adminTokenEnv, "")
	err := runServe(context.Background(), &globalOptions{}, serveOptions{httpPort: freePort(t), adminPort: freePort(t), adminHost: "0.0.0.0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--admin-host") {
		t.Errorf("admin port on every interface without a token: %v", err)
	}
}

// The grace period bounds the whole shutdown: a batch still running in a
// model host when it runs out is cut (its host killed), not waited for,
// and the models close together, not one after another.
func TestShutdownEndsWithinTheGracePeriod(t *testing.T) {
	faulty := filepath.Join("..", "..", "testdata", "variants", "faulty.onnx")
	cfg := "max_batch_size: 0\nwarmup: {data: zero}\n"
	model, err := os.ReadFile(faulty)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, m := range []string{"stalled-a", "stalled-b"} {
		if err := os.MkdirAll(filepath.Join(dir, m, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(os.WriteFile(filepath.Join(dir, m, "1", "model.onnx"), model, 0o644),
			os.WriteFile(filepath.Join(dir, m, "config.yaml"), []byte(cfg), 0o644)); err != nil {
			t.Fatal(err)
		}
	}
	addrs, stop, done := startServeAddrs(t, serveOptions{path: dir, gracePeriod: 2 * time.Second, drainDelay: 100 * time.Millisecond})
	// About 40 s of work each (faulty's column 2 at k stalls it k thousand
	// loop iterations).
	body := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0.25,0.5,20000.75,0.125]}]}`
	for _, m := range []string{"stalled-a", "stalled-b"} {
		go func() {
			if resp, err := http.Post("http://"+addrs["HTTP"]+"/v2/models/"+m+"/infer", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + addrs["metrics"] + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `infer_inflight_requests{model="stalled-a",version="1"} 1`) &&
				strings.Contains(string(b), `infer_inflight_requests{model="stalled-b",version="1"} 1`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled requests never started")
		}
	}
	began := time.Now()
	stop()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not return")
	}
	// Waiting for the batches would take 40 s, and closing the two models
	// one after another with the 10 s close grace each 22 s.
	if took := time.Since(began); took > 8*time.Second {
		t.Fatalf("shutdown took %v with a 2 s grace period", took)
	}
}

// A signal during start-up is acted on at once, not once every model has
// loaded: serve returns saying it was interrupted while loading.
func TestServeInterruptedWhileLoading(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faults", "slow-load.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"slow1"} {
		if err := os.MkdirAll(filepath.Join(dir, name, "1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "1", "model.onnx"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the signal came as the loads began
	// The load goes on in the background: this test's, not the next one's.
	defer abandonedLoads.Wait()
	err = runServe(ctx, &globalOptions{}, serveOptions{path: dir, host: "127.0.0.1", httpPort: freePort(t), grpcPort: freePort(t)}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "interrupted while loading the model repository") {
		t.Fatalf("serve signalled during its loads: %v, want the interruption named", err)
	}
}

// SIGHUP drains as SIGTERM does: the request in flight is answered and
// the process exits 0. It once ended the server at once, cutting every
// request, as Go's default for the signal does.
func TestHangupDrains(t *testing.T) {
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "mlp"), os.DirFS(filepath.Join("..", "..", "testdata", "models", "mlp"))); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 1)
	base := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	cmd, logs := inferProcess(t, base+"/v2/health/ready", 30*time.Second, "serve", repo,
		"--host", "127.0.0.1", "--http-port", strconv.Itoa(ports[0]), "--grpc-port", "0", "--metrics-port", "0", "--admin-port", "0",
		"--drain-delay", "0s", "--allow-fault-injection", "--fault", "mlp:1:latency=1s")
	body, hl, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}).Encode(true)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/v2/models/mlp/infer", bytes.NewReader(body))
		req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	// The signal comes once the request is in its second of latency.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `infer_inflight_requests{model="mlp",version="1"} 1`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request never was in flight:\n%s", logs.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("the request in flight at SIGHUP: %v\n%s", err, logs.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGHUP: %v, want exit 0\n%s", err, logs.String())
	}
}

// A mistyped flag names the closest one the command has and where its
// flags are listed, a word of a flag's name the flags holding it, another
// tool's name for a flag ours; one like no flag at all says where to look.
func TestUnknownFlagSuggestsTheClosest(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--htp-port", "18110"}, "unknown flag: --htp-port (did you mean --http-port? see infer serve --help)"},
		{[]string{"bench", "--qpss", "5"}, "unknown flag: --qpss (did you mean --qps? see infer bench --help)"},
		{[]string{"serve", "--zzzzzz"}, "unknown flag: --zzzzzz (see infer serve --help)"},
		{[]string{"serve", "--port", "18110"}, "unknown flag: --port (did you mean --http-port, --grpc-port, --metrics-port or --admin-port? see infer serve --help)"},
		{[]string{"serve", "--model-repo", "x"}, "unknown flag: --model-repo (did you mean --model-repository? see infer serve --help)"},
		{[]string{"bench", "--rate", "100"}, "unknown flag: --rate (did you mean --qps? see infer bench --help)"},
		{[]string{"bench", "--workers", "8"}, "unknown flag: --workers (did you mean --concurrency? see infer bench --help)"},
	} {
		if _, err := run(t, c.args...); err == nil || err.Error() != c.want {
			t.Errorf("infer %v: %v, want %q", c.args, err, c.want)
		}
	}
}

// A mistyped command under a group (deploy, models, monitor) fails,
// naming the closest command, where the group's help used to print with
// exit 0, so that a script with the typo passed; a flag after it does not
// hide it. A command that runs and has commands too suggests them.
func TestUnknownCommandFails(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "rendr"}, `unknown command "rendr" for "infer deploy" (did you mean render? see infer deploy --help)`},
		{[]string{"deploy", "rendr", "--server", "x"}, `unknown command "rendr" for "infer deploy" (did you mean render? see infer deploy --help)`},
		{[]string{"models", "lst"}, `unknown command "lst" for "infer models" (did you mean list? see infer models --help)`},
		{[]string{"monitor", "basline"}, `unknown command "basline" for "infer monitor" (did you mean baseline? see infer monitor --help)`},
		{[]string{"monitor", "zzzz"}, `unknown command "zzzz" for "infer monitor" (see infer monitor --help)`},
		{[]string{"bench", "compar", "a.json", "b.json"}, "accepts at most 1 arg(s), received 3 (did you mean infer bench compare? see infer bench --help)"},
	} {
		if _, err := run(t, c.args...); err == nil || err.Error() != c.want {
			t.Errorf("infer %v: %v, want %q", c.args, err, c.want)
		}
	}
	if out, err := run(t, "deploy"); err != nil || !strings.Contains(out, "render") {
		t.Errorf("infer deploy: %v, %q; want its help", err, out)
	}
}
