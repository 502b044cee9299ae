// Package grpcapi is infer's gRPC front end: the Open Inference
// Protocol's inference.GRPCInferenceService, and the standard health
// service. It decodes each ModelInferRequest into a core.Call, hands it
// to the serving core and encodes the answer, with the latency budget in
// the trailing metadata; it knows nothing of routing, batching or the
// runtime.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// gRPC metadata keys of the trailers every ModelInfer response carries.
const (
	TrailerServerTiming = "server-timing"
	TrailerBatchSize    = "inference-batch-size"
)

// Options configure the service.
type Options struct {
	// Name and Version are reported by ServerMetadata.
	Name, Version string
	// Receiving is the budget the server's connections charge their
	// request messages to (its Credentials): past its bound an inference
	// call is refused before it waits for its model. Nil: no budget.
	Receiving *ReceiveBudget
}

// Register adds the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService) over c, and the standard gRPC health
// service whose state health holds, to g, which must use Codec.
func Register(g *grpc.Server, c *core.Core, health *health.Server, opts Options) {
	desc := serviceDesc()
	g.RegisterService(&desc, &grpcService{s: c, opts: opts})
	healthDesc := malformedIsInvalid(healthpb.Health_ServiceDesc)
	g.RegisterService(&healthDesc, health)
}

// grpcError maps an error to a gRPC status, as core.Status does for HTTP.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch core.Status(err) {
	case 400:
		code = codes.InvalidArgument
	case 404:
		code = codes.NotFound
	case 413, 429:
		code = codes.ResourceExhausted
	case 503:
		code = codes.Unavailable
	case 504:
		code = codes.DeadlineExceeded
	case core.StatusClientClosed:
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

type grpcService struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s    *core.Core
	opts Options
}

func (g *grpcService) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	return &inferencepb.ModelReadyResponse{Ready: g.s.ModelReady(req.GetName(), req.GetVersion())}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: g.opts.Name, Version: g.opts.Version, Extensions: core.Extensions()}, nil
}

func (g *grpcService) ModelMetadata(ctx context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	m, err := g.s.Acquire(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	meta := m.Metadata()
	resp := &inferencepb.ModelMetadataResponse{Name: meta.Name, Platform: meta.Platform, Versions: g.s.ReadyVersions(meta.Name)}
	for _, t := range meta.Inputs {
		resp.Inputs = append(resp.Inputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape})
	}
	for _, t := range meta.Outputs {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape})
	}
	return resp, nil
}

// modelInfer is ModelInfer's handler: m is the request as the codec
// scanned it.
func (g *grpcService) modelInfer(ctx context.Context, m *inferMessage) (*inferencepb.ModelInferResponse, error) {
	resp, timing, err := g.infer(ctx, m)
	if err != nil {
		if after, ok := core.RetryAfter(err); ok {
			md := metadata.Pairs("retry-after", after)
			if core.CircuitOpen(err) {
				md.Set(core.TrailerFallback, core.ViaUnavailable)
			}
			_ = grpc.SetTrailer(ctx, md)
		}
		return nil, grpcError(err)
	}
	md := metadata.Pairs(
		TrailerServerTiming, string(timing.AppendServerTiming(nil)),
		TrailerBatchSize, strconv.Itoa(timing.BatchSize))
	if via := resp.GetParameters()[core.TrailerFallback].GetStringParam(); via != "" {
		md.Set(core.TrailerFallback, via)
	}
	_ = grpc.SetTrailer(ctx, md)
	return resp, nil
}

// maxStreamInFlight bounds the requests of one stream executing at once.
const maxStreamInFlight = 64

// modelStreamInfer is ModelStreamInfer's handler. It runs each request of
// the stream as it arrives, up to maxStreamInFlight at once, and sends
// each response (or its error, a malformed request's included) when
// ready: responses may come out of order, matched by id. The timing
// travels in each response's "server-timing" parameter.
func (g *grpcService) modelStreamInfer(stream grpc.ServerStream) error {
	ctx := stream.Context()
	var (
		wg      sync.WaitGroup
		sendMu  sync.Mutex
		sendErr error
		slots   = make(chan struct{}, maxStreamInFlight)
	)
	send := func(r *inferencepb.ModelStreamInferResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.SendMsg(r)
		}
	}
	defer wg.Wait()
	for {
		m := new(inferMessage)
		err := stream.RecvMsg(m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			resp, timing, err := g.inferRecovered(ctx, m)
			if err != nil {
				send(&inferencepb.ModelStreamInferResponse{ErrorMessage: protocol.ClipMessage(err.Error()), // as a status message is
					InferResponse: &inferencepb.ModelInferResponse{ModelName: m.model, ModelVersion: m.version, Id: m.id}})
				return
			}
			if resp.Parameters == nil {
				resp.Parameters = map[string]*inferencepb.InferParameter{}
			}
			resp.Parameters[TrailerServerTiming] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: string(timing.AppendServerTiming(nil))}}
			send(&inferencepb.ModelStreamInferResponse{InferResponse: resp})
		})
	}
}

// inferRecovered runs one request of a stream on the stream's goroutine
// for it, where the stream interceptor cannot recover a panic: it is
// recovered here into INTERNAL for that request alone.
func (g *grpcService) inferRecovered(ctx context.Context, m *inferMessage) (resp *inferencepb.ModelInferResponse, timing *profile.Timing, err error) {
	defer func() {
		if v := recover(); v != nil {
			resp, timing = nil, nil
			err = status.Error(codes.Internal, g.s.Panicked(core.ProtoGRPC, "a ModelStreamInfer request", v).Error())
		}
	}()
	return g.infer(ctx, m)
}

// infer runs one inference request through the core. A request the codec
// found malformed is refused before it reaches the core.
func (g *grpcService) infer(ctx context.Context, m *inferMessage) (*inferencepb.ModelInferResponse, *profile.Timing, error) {
	if m.err != nil {
		return nil, nil, m.err
	}
	var resp *inferencepb.ModelInferResponse
	call := &core.Call{
		Model: m.model, Version: m.version, Protocol: core.ProtoGRPC,
		Start: time.Now(), Header: metadataOf(ctx),
		Read:   func(*core.Call) error { return g.opts.Receiving.Check(ctx) }, // the message is in memory already
		Decode: func(c *core.Call) error { return callOf(c, m) },
		Encode: func(res *core.Result) error { resp = responseOf(m, res); return nil },
	}
	res, err := g.s.Infer(ctx, call)
	if err != nil {
		return nil, nil, err
	}
	return resp, &res.Timing, nil
}

// metadataOf returns the lookup of ctx's incoming metadata by a header's
// name (gRPC keys are lower case), or nil when it has none.
func metadataOf(ctx context.Context) func(string) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	return func(name string) string {
		if v := md.Get(strings.ToLower(name)); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// callOf fills c from m: id, inputs (raw contents not copied), outputs
// wanted, and the timeout (in microseconds) and priority parameters.
func callOf(c *core.Call, m *inferMessage) error {
	inputs, err := m.tensors(c.CheckInputBytes)
	if err != nil {
		return err
	}
	c.Request.ID, c.Request.Inputs = m.id, inputs
	for i, b := range m.outputs {
		name, params, err := requestedOutput(b)
		if err != nil {
			return at(fmt.Sprintf("outputs[%d]", i), err)
		}
		if err := protocol.CheckName(name, "requested output"); err != nil {
			return err
		}
		c.Request.Outputs = append(c.Request.Outputs, name)
		if err := classesOf(c, name, params); err != nil {
			return err
		}
	}
	params, err := parameters(m.params)
	if err != nil {
		return at("parameters", err)
	}
	for _, p := range params {
		switch p.name {
		case protocol.ParamTimeout:
			v, err := p.count(fmt.Sprintf("parameter %q", p.name), " (microseconds)")
			if err != nil {
				return err
			}
			c.Timeout = time.Duration(v) * time.Microsecond
		case protocol.ParamPriority:
			v, err := p.count(fmt.Sprintf("parameter %q", p.name), "")
			if err != nil {
				return err
			}
			c.Request.Priority = int(v)
		}
	}
	return nil
}

// responseOf is the response to m that res answers.
func responseOf(m *inferMessage, res *core.Result) *inferencepb.ModelInferResponse {
	meta := res.Model.Metadata()
	resp := &inferencepb.ModelInferResponse{ModelName: meta.Name, ModelVersion: strconv.FormatInt(meta.Version, 10), Id: m.id,
		Outputs:           make([]*inferencepb.ModelInferResponse_InferOutputTensor, len(res.Outputs)),
		RawOutputContents: make([][]byte, len(res.Outputs))}
	if res.Via != "" {
		resp.Parameters = map[string]*inferencepb.InferParameter{core.TrailerFallback: {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: res.Via}}}
	}
	if res.Route != "" {
		if resp.Parameters == nil {
			resp.Parameters = map[string]*inferencepb.InferParameter{}
		}
		resp.Parameters[core.TrailerRoute] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: res.Route}}
	}
	for i, t := range res.Outputs {
		resp.Outputs[i] = &inferencepb.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
		resp.RawOutputContents[i] = t.Data
	}
	return resp
}

func (g *grpcService) ModelConfig(ctx context.Context, req *inferencepb.ModelConfigRequest) (*inferencepb.ModelConfigResponse, error) {
	m, err := g.s.Acquire(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	return &inferencepb.ModelConfigResponse{Config: core.TritonModelConfig(m)}, nil
}

func pbDuration(count int64, d time.Duration) *inferencepb.StatisticDuration {
	return &inferencepb.StatisticDuration{Count: uint64(count), Ns: uint64(d)}
}

func (g *grpcService) ModelStatistics(_ context.Context, req *inferencepb.ModelStatisticsRequest) (*inferencepb.ModelStatisticsResponse, error) {
	all, err := g.s.Stats(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &inferencepb.ModelStatisticsResponse{}
	for _, vs := range all {
		x := vs.Stats
		ms := &inferencepb.ModelStatistics{Name: vs.Name, Version: vs.Version, InferenceCount: uint64(x.Rows), ExecutionCount: uint64(x.Executions),
			InferenceStats: &inferencepb.InferStatistics{
				Success:       pbDuration(x.Success, x.SuccessTime),
				Fail:          pbDuration(x.Failure, 0),
				Queue:         pbDuration(x.Success, x.Queue),
				ComputeInput:  pbDuration(x.Success, x.ComputeInput),
				ComputeInfer:  pbDuration(x.Success, x.ComputeInfer),
				ComputeOutput: pbDuration(x.Success, x.ComputeOutput),
				CacheHit:      pbDuration(0, 0),
				CacheMiss:     pbDuration(0, 0),
			}}
		if c := x.Cache; c != nil {
			ms.InferenceStats.CacheHit = pbDuration(c.Hits, c.HitTime)
			ms.InferenceStats.CacheMiss = pbDuration(c.Misses, c.MissTime)
		}
		if !x.LastInference.IsZero() {
			ms.LastInference = uint64(x.LastInference.UnixMilli())
		}
		resp.ModelStats = append(resp.ModelStats, ms)
	}
	return resp, nil
}

func (g *grpcService) RepositoryIndex(_ context.Context, req *inferencepb.RepositoryIndexRequest) (*inferencepb.RepositoryIndexResponse, error) {
	resp := &inferencepb.RepositoryIndexResponse{}
	for _, st := range g.s.Repository().Index() {
		if req.GetReady() && st.State != runner.StateReady {
			continue
		}
		resp.Models = append(resp.Models, &inferencepb.RepositoryIndexResponse_ModelIndex{
			Name: st.Name, Version: strconv.FormatInt(st.Version, 10), State: st.State, Reason: st.Reason})
	}
	return resp, nil
}

// admin authorizes an admin RPC as the public HTTP port's admin endpoints
// are (the gRPC port is a public one): the bearer token from the
// authorization metadata, or a loopback peer where the server trusts
// loopback. It returns who called, for the log.
func (g *grpcService) admin(ctx context.Context, what string) (string, error) {
	var auth, remote string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			auth = v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	switch code, err := g.s.Authorize(auth, remote, what, true); code {
	case http.StatusUnauthorized:
		return "", status.Error(codes.Unauthenticated, err.Error())
	case http.StatusForbidden:
		return "", status.Error(codes.PermissionDenied, err.Error())
	}
	if auth != "" {
		return "token holder at " + remote, nil
	}
	return remote, nil
}

func (g *grpcService) RepositoryModelLoad(ctx context.Context, req *inferencepb.RepositoryModelLoadRequest) (*inferencepb.RepositoryModelLoadResponse, error) {
	by, err := g.admin(ctx, "RepositoryModelLoad")
	if err != nil {
		return nil, err
	}
	if err := core.CheckLoadParameters(slices.Collect(maps.Keys(req.GetParameters()))); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := g.s.Load(req.GetModelName(), by); err != nil {
		return nil, status.Error(adminCode(core.LoadStatus(err)), err.Error())
	}
	return &inferencepb.RepositoryModelLoadResponse{}, nil
}

func (g *grpcService) RepositoryModelUnload(ctx context.Context, req *inferencepb.RepositoryModelUnloadRequest) (*inferencepb.RepositoryModelUnloadResponse, error) {
	by, err := g.admin(ctx, "RepositoryModelUnload")
	if err != nil {
		return nil, err
	}
	if err := g.s.Unload(req.GetModelName(), by+" over gRPC"); err != nil {
		return nil, status.Error(adminCode(core.AdminStatus(err)), err.Error())
	}
	return &inferencepb.RepositoryModelUnloadResponse{}, nil
}

// adminCode is the gRPC code of an admin call's HTTP status.
func adminCode(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.FailedPrecondition
	}
	return codes.Internal
}
