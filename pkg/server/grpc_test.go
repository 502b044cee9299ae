package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/infer-serving/infer/internal/h2wire"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/heaptest"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// startGRPC serves the bundled models over gRPC on a loopback port and
// returns a client of the generated code.
func startGRPC(t *testing.T) (*Server, inferencepb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(repo, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); repo.Close() })
	c, conn := serveGRPC(t, s)
	return s, c, conn
}

// serveGRPC serves s's gRPC service on loopback until the test ends.
func serveGRPC(t *testing.T, s *Server) (inferencepb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	g := grpc.NewServer(s.GRPCServerOptions()...)
	s.RegisterGRPC(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop() })
	return inferencepb.NewGRPCInferenceServiceClient(conn), conn
}

func code(err error) codes.Code { return status.Code(err) }

func TestGRPCHealthAndMetadata(t *testing.T) {
	s, c, conn := startGRPC(t)
	ctx := context.Background()
	if r, err := c.ServerLive(ctx, &inferencepb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Fatalf("live: %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &inferencepb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ready: %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "mlp", Version: "1"}); err != nil || !r.Ready {
		t.Fatalf("model ready: %v %v", r, err)
	}
	if r, _ := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "nope"}); r.Ready {
		t.Fatal("unknown model ready")
	}
	sm, err := c.ServerMetadata(ctx, &inferencepb.ServerMetadataRequest{})
	if err != nil || sm.Name != "infer" || sm.Version != "test" {
		t.Fatalf("server metadata %v %v", sm, err)
	}
	mm, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "multi-io"})
	if err != nil || mm.Platform != "onnxruntime_onnx" || len(mm.Inputs) != 5 || mm.Inputs[2].Datatype != "FP16" || fmt.Sprint(mm.Outputs[3].Shape) != "[-1 1]" {
		t.Fatalf("model metadata %v %v", mm, err)
	}
	if _, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "mlp", Version: "9"}); code(err) != codes.NotFound {
		t.Fatalf("unknown version: %v", err)
	}
	cfg, err := c.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: "mlp"})
	if err != nil || cfg.Config.MaxBatchSize != 64 || fmt.Sprint(cfg.Config.Input[0].Dims) != "[784]" ||
		cfg.Config.Input[0].DataType != inferencepb.DataType_TYPE_FP32 || cfg.Config.GetDynamicBatching().GetDefaultQueuePolicy().GetMaxQueueSize() != 1024 {
		t.Fatalf("config %v %v", cfg, err)
	}
	if cfg, _ := c.ModelConfig(ctx, &inferencepb.ModelConfigRequest{Name: "fixed-shape"}); fmt.Sprint(cfg.Config.Input[0].Dims) != "[2 3]" || cfg.Config.GetDynamicBatching() != nil {
		t.Fatalf("fixed-shape config %v", cfg)
	}
	idx, err := c.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.Models) != 6 || idx.Models[0].State != "READY" {
		t.Fatalf("index %v %v", idx, err)
	}

	h := healthpb.NewHealthClient(conn)
	if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", r, err)
	}
	s.Drain()
	if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while draining: %v %v", r, err)
	}
	// Not serving by its health, yet answering: clients take a while to notice.
	m, _ := s.Repository().Model("mlp", 0)
	if _, err := c.ModelInfer(ctx, requests.GRPC("mlp", runner.SyntheticInputs(m.Metadata().Inputs, 1, true), true)); err != nil {
		t.Fatalf("infer while draining: %v", err)
	}
}

// The generated client round-trips every bundled model, raw and typed,
// with exactly the runner's outputs, and the latency budget in trailers.
func TestGRPCInferAllModels(t *testing.T) {
	_, c, _ := startGRPC(t)
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"mlp", "text-encoder", "multi-io", "fixed-shape"} {
		m, _ := repo.Model(name, 0)
		var inputs []tensor.Tensor
		for _, spec := range runner.SyntheticInputs(m.Metadata().Inputs, 3, *m.Config().MaxBatchSize > 0) {
			inputs = append(inputs, tensor.Random(spec.Name, spec.DataType, spec.Shape, r))
		}
		want, err := m.Infer(context.Background(), &runner.Request{Inputs: inputs})
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range []bool{true, false} {
			if !raw && name == "multi-io" {
				continue // FP16 has no typed contents; checked below
			}
			var trailer metadata.MD
			resp, err := c.ModelInfer(context.Background(), requests.GRPC(name, inputs, raw), grpc.Trailer(&trailer))
			if err != nil {
				t.Fatalf("%s raw=%v: %v", name, raw, err)
			}
			if resp.Id != "g-"+name || resp.ModelVersion != "1" || len(resp.RawOutputContents) != len(want.Outputs) {
				t.Fatalf("%s: response %v", name, resp)
			}
			for i, w := range want.Outputs {
				if resp.Outputs[i].Name != w.Name || fmt.Sprint(resp.Outputs[i].Shape) != fmt.Sprint(w.Shape) || !bytes.Equal(resp.RawOutputContents[i], w.Data) {
					t.Fatalf("%s raw=%v output %s differs", name, raw, w.Name)
				}
			}
			timing, ok := profile.ParseServerTiming(strings.Join(trailer.Get(TrailerServerTiming), ","))
			if !ok || timing.Get(profile.Infer) <= 0 || len(trailer.Get(TrailerBatchSize)) != 1 {
				t.Fatalf("%s: trailers %v", name, trailer)
			}
		}
	}
	// FP16 only travels raw: typed contents are refused, naming the input.
	bad := requests.GRPC("multi-io", runner.SyntheticInputs([]runner.TensorSpec{{Name: "halfs", DataType: tensor.FP16, Shape: []int64{-1, 4}}}, 1, true), false)
	if _, err := c.ModelInfer(context.Background(), bad); code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"halfs"`) {
		t.Fatalf("typed FP16: %v", err)
	}
}

func TestGRPCErrors(t *testing.T) {
	_, c, _ := startGRPC(t)
	ctx := context.Background()
	image := []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}
	for _, tc := range []struct {
		name string
		req  *inferencepb.ModelInferRequest
		code codes.Code
		want string
	}{
		{"unknown model", requests.GRPC("nope", image, true), codes.NotFound, "nope"},
		{"no inputs", &inferencepb.ModelInferRequest{ModelName: "mlp"}, codes.InvalidArgument, "takes 1 inputs, the request has 0"},
		{"wrong shape", requests.GRPC("mlp", []tensor.Tensor{tensor.New("image", []int64{1, 3}, []float32{1, 2, 3})}, true), codes.InvalidArgument, `"image"`},
		{"short typed", func() *inferencepb.ModelInferRequest {
			r := requests.GRPC("mlp", image, false)
			r.Inputs[0].Contents.Fp32Contents = r.Inputs[0].Contents.Fp32Contents[:5]
			return r
		}(), codes.InvalidArgument, `input "image": shape [1 784]: declares 784 elements, contents hold 5`},
		{"a timeout past a Duration", func() *inferencepb.ModelInferRequest {
			r := requests.GRPC("mlp", image, true)
			r.Parameters = map[string]*inferencepb.InferParameter{"timeout": {ParameterChoice: &inferencepb.InferParameter_Uint64Param{Uint64Param: 18446744073709552}}}
			return r
		}(), codes.InvalidArgument, `parameter "timeout": 18446744073709552 is over 2^53`},
		{"a negative priority", func() *inferencepb.ModelInferRequest {
			r := requests.GRPC("mlp", image, true)
			r.Parameters = map[string]*inferencepb.InferParameter{"priority": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: -1}}}
			return r
		}(), codes.InvalidArgument, `parameter "priority": want a non-negative integer`},
		{"raw count", func() *inferencepb.ModelInferRequest {
			r := requests.GRPC("mlp", image, true)
			r.RawInputContents = append(r.RawInputContents, nil)
			return r
		}(), codes.InvalidArgument, "2 raw_input_contents for 1 inputs"},
	} {
		_, err := c.ModelInfer(ctx, tc.req)
		if code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.code, tc.want)
		}
	}
}

// wireCodec sends a message given as its wire bytes ([]byte) as it is,
// and reads answers with protobuf: a client of malformed requests.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }
func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// A request that is not a well-formed ModelInferRequest, or one whose
// repeated fields pass their bounds, is the client's error
// (INVALID_ARGUMENT, naming what is wrong), answered unary and on a
// stream, where the stream goes on; and a message of millions of empty
// entries costs the server no more than its bytes (it took 60x them
// through protobuf's unmarshalling).
func TestGRPCMalformedRequestIsInvalidArgument(t *testing.T) {
	_, _, conn := startGRPC(t)
	ctx := context.Background()
	model := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "mlp")
	empties := bytes.Repeat(protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), nil), 4<<20)
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"cut short", append(model, 0x2a, 0x10, 1), "ModelInferRequest: malformed protobuf: field 5: unexpected EOF"},
		{"a name not UTF-8", protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff}), "model_name is not valid UTF-8"},
		{"8 MB of empty raw_input_contents", append(model, empties...), "more than 1024 raw_input_contents"},
	} {
		var resp inferencepb.ModelInferResponse
		err := conn.Invoke(ctx, inferencepb.GRPCInferenceService_ModelInfer_FullMethodName, tc.msg, &resp, grpc.ForceCodecV2(wireCodec{}))
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT mentioning %q", tc.name, err, tc.want)
		}
	}

	// The other methods, read by protobuf, answer the same.
	badName := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff})
	for _, method := range []string{inferencepb.GRPCInferenceService_ModelReady_FullMethodName, inferencepb.GRPCInferenceService_ModelMetadata_FullMethodName,
		inferencepb.GRPCInferenceService_ModelConfig_FullMethodName, inferencepb.GRPCInferenceService_ModelStatistics_FullMethodName,
		"/grpc.health.v1.Health/Check"} {
		var resp emptypb.Empty
		if err := conn.Invoke(ctx, method, badName, &resp, grpc.ForceCodecV2(wireCodec{})); code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "malformed request") {
			t.Errorf("%s with a name that is not UTF-8: %v, want INVALID_ARGUMENT", method, err)
		}
	}

	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		inferencepb.GRPCInferenceService_ModelStreamInfer_FullMethodName, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(requests.GRPC("mlp", []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}, true))
	if err != nil {
		t.Fatal(err)
	}
	// An error of many bytes (a name of 1 KiB of control bytes, quoted) is
	// cut as a status message is.
	long, err := proto.Marshal(requests.GRPC("mlp", []tensor.Tensor{{Name: strings.Repeat("\x01", 1024), DataType: tensor.FP32, Shape: []int64{1, 784}, Data: []byte{1}}}, true))
	if err != nil {
		t.Fatal(err)
	}
	for i, msg := range [][]byte{append(model, 0x2a, 0x10, 1), good, long} {
		if err := stream.SendMsg(msg); err != nil {
			t.Fatal(err)
		}
		var resp inferencepb.ModelStreamInferResponse
		if err := stream.RecvMsg(&resp); err != nil {
			t.Fatal(err)
		}
		switch e := resp.GetErrorMessage(); {
		case i == 0 && !strings.Contains(e, "malformed protobuf"):
			t.Errorf("a malformed request on a stream: %q", e)
		case i == 1 && (e != "" || len(resp.GetInferResponse().GetRawOutputContents()) != 1):
			t.Errorf("the next request on the stream: %q", e)
		case i == 2 && (!strings.Contains(e, "cut") || len(e) > protocol.MaxMessageBytes+100):
			t.Errorf("an error of many bytes on a stream: %d bytes", len(e))
		}
	}
	_ = stream.CloseSend()
}

// Typed contents are counted before they are decoded, and a request whose
// tensors would pass its version's bound on one request's bytes is
// refused then (RESOURCE_EXHAUSTED), before their bytes are made: 4M
// empty strings, 8 MB on the wire, would decode to 16 MB.
func TestGRPCTypedContentsPastTheBoundAreNotDecoded(t *testing.T) {
	_, _, conn := startGRPC(t)
	const n = 4 << 20
	in, err := proto.Marshal(&inferencepb.ModelInferRequest_InferInputTensor{Name: "image", Datatype: "BYTES", Shape: []int64{n}})
	if err != nil {
		t.Fatal(err)
	}
	in = protowire.AppendBytes(protowire.AppendTag(in, 5, protowire.BytesType),
		bytes.Repeat(protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), nil), n))
	msg := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "mlp")
	msg = protowire.AppendBytes(protowire.AppendTag(msg, 5, protowire.BytesType), in)
	var resp inferencepb.ModelInferResponse
	grew := heaptest.Allocated(func() {
		err = conn.Invoke(context.Background(), inferencepb.GRPCInferenceService_ModelInfer_FullMethodName, msg, &resp, grpc.ForceCodecV2(wireCodec{}))
	})
	if code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "the inputs hold 16777216 bytes, more than twice a full batch") {
		t.Fatalf("%v, want RESOURCE_EXHAUSTED naming the inputs' 16 MB", err)
	}
	// The message is held once (grpc-go's pool may make a buffer for it,
	// as the first call does); its tensor's 16 MB are not made.
	if limit := uint64(len(msg)) * 5 / 2; grew > limit {
		t.Errorf("a %d-byte message refused: the heap grew %d bytes, over %d", len(msg), grew, limit)
	}
}

func TestGRPCStreamAndStatistics(t *testing.T) {
	s, c, _ := startGRPC(t)
	ctx := context.Background()
	stream, err := c.ModelStreamInfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		req := requests.GRPC("mlp", []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}, true)
		req.Id = fmt.Sprint(i)
		if i == 7 {
			req.Inputs[0].Shape = []int64{1, 5} // one bad request: an error message, the stream goes on
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id := r.InferResponse.GetId()
		seen[id] = true
		if (id == "7") != (r.ErrorMessage != "") {
			t.Fatalf("response %s: error %q", id, r.ErrorMessage)
		}
		if id != "7" && r.InferResponse.Parameters[TrailerServerTiming].GetStringParam() == "" {
			t.Fatalf("response %s lacks its timing", id)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d responses for %d requests", len(seen), n)
	}
	st, err := c.ModelStatistics(ctx, &inferencepb.ModelStatisticsRequest{Name: "mlp"})
	if err != nil || len(st.ModelStats) != 1 {
		t.Fatal(err)
	}
	is := st.ModelStats[0].InferenceStats
	if is.Success.Count != n-1 || is.ComputeInfer.Ns == 0 || st.ModelStats[0].InferenceCount != n-1 {
		t.Fatalf("statistics %v", st.ModelStats[0])
	}
	if _, err := c.ModelStatistics(ctx, &inferencepb.ModelStatisticsRequest{Name: "ghost"}); code(err) != codes.NotFound {
		t.Fatalf("statistics of a missing model: %v", err)
	}
	if _, err := c.RepositoryModelUnload(ctx, &inferencepb.RepositoryModelUnloadRequest{ModelName: "mlp"}); code(err) != codes.PermissionDenied {
		t.Fatalf("unload on the public port of a server with no admin token: %v", err)
	}
	trusting, err := New(s.Repository(), Options{AdminTrustLoopback: true}) // as --admin-trust-loopback: a loopback peer may
	if err != nil {
		t.Fatal(err)
	}
	defer trusting.Close()
	admin, _ := serveGRPC(t, trusting)
	if _, err := admin.RepositoryModelUnload(ctx, &inferencepb.RepositoryModelUnloadRequest{ModelName: "mlp"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "mlp"}); r.Ready {
		t.Fatal("unloaded model ready")
	}
	override := map[string]*inferencepb.ModelRepositoryParameter{"config": {ParameterChoice: &inferencepb.ModelRepositoryParameter_StringParam{StringParam: `{"max_batch_size": 1}`}}}
	if _, err := admin.RepositoryModelLoad(ctx, &inferencepb.RepositoryModelLoadRequest{ModelName: "mlp", Parameters: override}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "parameters.config") {
		t.Fatalf("load with a config override: %v, want INVALID_ARGUMENT naming parameters.config", err)
	}
	if _, err := admin.RepositoryModelLoad(ctx, &inferencepb.RepositoryModelLoadRequest{ModelName: "mlp"}); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "mlp"}); !r.Ready {
		t.Fatal("reloaded model not ready")
	}
}

// TestGRPCStalledMessagesAreBounded serves gRPC as Serve does, with a
// 64 KiB message bound and so a receive budget of 256 KiB: a connection
// whose six stalled calls hold 300 KiB of messages still arriving is
// closed, and a client on another connection is answered before and
// after, with nothing left charged.
func TestGRPCStalledMessagesAreBounded(t *testing.T) {
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(repo, Options{Version: "test", MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); repo.Close() })
	client, conn := serveGRPC(t, s)
	ready := func(when string) {
		t.Helper()
		if r, err := client.ModelReady(t.Context(), &inferencepb.ModelReadyRequest{Name: "mlp"}); err != nil || !r.Ready {
			t.Fatalf("%s the attack: mlp ready %v, %v", when, r.GetReady(), err)
		}
	}
	ready("before")

	attacker, err := h2wire.Dial(conn.Target(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for id := uint32(1); id <= 11; id += 2 {
		err := attacker.Open(id, "/inference.GRPCInferenceService/ModelInfer")
		if err == nil {
			err = attacker.Send(id, h2wire.Message(60<<10, 50<<10), 16<<10, 0, false, 30*time.Second)
		}
		if h2wire.Closed(err) && id >= 9 {
			// Closed while the fifth or sixth call was written: five
			// calls' 50 KiB, their frames and the pool buffers they are
			// read into come to the 256 KiB bound, and whether the fifth
			// passes it depends on how much of it the server had read.
			break
		}
		if err != nil {
			t.Fatalf("stream %d: %v", id, err)
		}
	}
	if err := attacker.WaitClosed(30 * time.Second); err != nil {
		t.Fatalf("the connection past the receive budget was not closed (held %d of %d): %v", s.receiving.Held(), s.receiving.Max(), err)
	}
	if s.receiving.Closed() != 1 || s.receiving.Held() != 0 {
		t.Fatalf("closed %d connections, %d bytes still charged; want 1 and 0", s.receiving.Closed(), s.receiving.Held())
	}
	ready("after")
}

// A call that sends its headers and never its message ends with
// DEADLINE_EXCEEDED once the read timeout passes, counted, while a unary
// call whose message came is answered however long its model takes (here
// an injected latency of three read timeouts), and a stream of requests
// may rest longer than the bound before its first.
func TestGRPCCallWithoutItsMessageEnds(t *testing.T) {
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const bound = 300 * time.Millisecond
	s, err := New(repo, Options{Version: "test", ReadTimeout: bound, AllowFaultInjection: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); repo.Close() })
	client, conn := serveGRPC(t, s)

	raw, err := h2wire.Dial(conn.Target(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.Open(1, "/inference.GRPCInferenceService/ModelInfer"); err != nil {
		t.Fatal(err)
	}
	got, msg, err := raw.AwaitStatus(1, 30*time.Second)
	if err != nil || got != fmt.Sprint(int(codes.DeadlineExceeded)) {
		t.Fatalf("a call with no message: grpc-status %q (%s), %v; want %d", got, msg, err, codes.DeadlineExceeded)
	}
	if n := s.messages.Expired(); n != 1 {
		t.Fatalf("%d calls counted as timed out waiting for their message, want 1", n)
	}

	m, _ := s.Repository().Model("mlp", 0)
	req := requests.GRPC("mlp", runner.SyntheticInputs(m.Metadata().Inputs, 1, true), true)
	if err := s.SetFault("mlp", 1, &Fault{Latency: 3 * bound}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ModelInfer(t.Context(), req); err != nil {
		t.Fatalf("a call whose model took three read timeouts: %v", err)
	}
	if err := s.SetFault("mlp", 1, nil); err != nil {
		t.Fatal(err)
	}

	stream, err := client.ModelStreamInfer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * bound) // resting: a bound on the first message would end the stream now
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetErrorMessage() != "" {
		t.Fatalf("a stream that rested before its first request: %v, %v", resp.GetErrorMessage(), err)
	}
	if n := s.messages.Expired(); n != 1 {
		t.Fatalf("%d calls counted as timed out, want still 1", n)
	}
}
