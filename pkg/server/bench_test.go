package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// BenchmarkServeMLP measures infer serve on mlp over real loopback
// sockets: binary HTTP, JSON HTTP and gRPC, at 1, 16 and 64 concurrent
// closed-loop clients, with dynamic batching off (max_batch_size 0) and on
// (max_batch_size 64, no delay). The clients are goroutines of this
// process, sharing the machine's cores with the server. Beside rows/s it
// reports the server's own overhead, total minus infer from each
// response's Server-Timing, at p50 and p99, in microseconds.
// INFER_BENCH_DEVICE (such as cuda:0) serves mlp on that device.
//
//	scripts/bench-serve.sh   (this, and the runtime alone, in one run)
func BenchmarkServeMLP(b *testing.B) {
	for _, batching := range []bool{false, true} {
		for _, proto := range []string{"http-binary", "http-json", "grpc"} {
			for _, c := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("batching=%v/%s/c=%d", batching, proto, c), func(b *testing.B) {
					benchmarkServe(b, batching, proto, c)
				})
			}
		}
	}
}

func benchmarkServe(b *testing.B, batching bool, proto string, callers int) {
	dir := b.TempDir()
	data, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", "model.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "mlp", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "mlp", "1", "model.onnx"), data, 0o644)
	mbs := 0
	if batching {
		mbs = 64
	}
	os.WriteFile(filepath.Join(dir, "mlp", "config.yaml"), []byte(fmt.Sprintf("max_batch_size: %d\n", mbs)), 0o644)
	repo, err := runner.Open(dir, runner.LoadOptions{Device: os.Getenv("INFER_BENCH_DEVICE")})
	if err != nil {
		b.Fatal(err)
	}
	defer repo.Close()
	s, err := New(repo, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	image := tensor.New("image", []int64{1, 784}, make([]float32, 784))
	for i := range 784 {
		image.Data[4*i+3] = 0x3f // 0.5ish, all rows alike
	}
	var send func() (overhead time.Duration, err error)
	switch proto {
	case "grpc":
		g := grpc.NewServer(s.GRPCServerOptions()...)
		s.RegisterGRPC(g)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go g.Serve(ln)
		defer g.Stop()
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		c := inferencepb.NewGRPCInferenceServiceClient(conn)
		req := &inferencepb.ModelInferRequest{ModelName: "mlp",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "FP32", Shape: image.Shape}},
			RawInputContents: [][]byte{image.Data}}
		send = func() (time.Duration, error) {
			var tr metadata.MD
			if _, err := c.ModelInfer(context.Background(), req, grpc.Trailer(&tr)); err != nil {
				return 0, err
			}
			return overheadOf(strings.Join(tr.Get(TrailerServerTiming), ",")), nil
		}
	default:
		hs := httptest.NewServer(s.Handler())
		defer hs.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers, MaxConnsPerHost: callers}}
		body, hl, err := (&protocol.InferRequest{Inputs: []tensor.Tensor{image}, BinaryOutput: proto == "http-binary"}).Encode(proto == "http-binary")
		if err != nil {
			b.Fatal(err)
		}
		url := hs.URL + "/v2/models/mlp/infer"
		send = func() (time.Duration, error) {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			if hl >= 0 {
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return 0, fmt.Errorf("status %d", resp.StatusCode)
			}
			return overheadOf(resp.Header.Get("Server-Timing")), err
		}
	}
	for range 50 { // warm connections and the runtime
		if _, err := send(); err != nil {
			b.Fatal(err)
		}
	}

	m, _ := repo.Model("mlp", 0)
	before := m.Stats()
	var left atomic.Int64
	left.Store(int64(b.N))
	overheads := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range callers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				o, err := send()
				if err != nil {
					b.Error(err)
					return
				}
				overheads[c] = append(overheads[c], o)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	after := m.Stats()
	all := slices.Concat(overheads...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(after.Rows-before.Rows)/float64(max(1, after.Executions-before.Executions)), "mean-batch")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "overhead-p50-us")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "overhead-p99-us")
	}
}

// overheadOf is the server's own time for one request: total minus infer.
func overheadOf(serverTiming string) time.Duration {
	t, ok := profile.ParseServerTiming(serverTiming)
	if !ok {
		return 0
	}
	return t.Get(profile.Total) - t.Get(profile.Infer)
}
