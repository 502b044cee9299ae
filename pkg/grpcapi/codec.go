package grpcapi

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/inferencepb"
)

// Codec is the codec a server of this service must use
// (grpc.ForceServerCodecV2(grpcapi.Codec())): protobuf's for every
// message, but an inference request (ModelInfer, ModelStreamInfer),
// which it keeps as its bytes and scans (inferMessage) for the handler.
func Codec() encoding.CodecV2 { return serverCodec{encoding.GetCodecV2(proto.Name)} }

type serverCodec struct{ proto encoding.CodecV2 }

func (c serverCodec) Name() string                           { return c.proto.Name() }
func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }
func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*checkedRequest); ok {
		r.err = c.proto.Unmarshal(data, r.msg)
		return nil // the handler answers r.err (malformedIsInvalid)
	}
	m, ok := v.(*inferMessage)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	// A message read in one buffer is kept with no copy, a message in
	// several is copied into one. The buffer is never freed back to its
	// pool: the call's tensors alias it for as long as anyone holds them
	// (a batch the call timed out of, an answer being sent), and the
	// collector takes it after them.
	*m = inferMessage{}
	m.err = m.scan(data.MaterializeToBuffer(mem.DefaultBufferPool()).ReadOnlyData())
	return nil
}

// serviceDesc is inference.GRPCInferenceService with the inference
// methods read through inferMessage; the others are the generated ones,
// a request protobuf cannot read answered as the client's fault
// (malformedIsInvalid).
func serviceDesc() grpc.ServiceDesc {
	d := malformedIsInvalid(inferencepb.GRPCInferenceService_ServiceDesc)
	for i := range d.Methods {
		if d.Methods[i].MethodName == "ModelInfer" {
			d.Methods[i].Handler = modelInferHandler
		}
	}
	for i := range d.Streams {
		if d.Streams[i].StreamName == "ModelStreamInfer" {
			d.Streams[i].Handler = modelStreamInferHandler
		}
	}
	return d
}

func modelInferHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	m := new(inferMessage)
	if err := dec(m); err != nil {
		return nil, err
	}
	g := srv.(*grpcService)
	if interceptor == nil {
		return g.modelInfer(ctx, m)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: inferencepb.GRPCInferenceService_ModelInfer_FullMethodName}
	return interceptor(ctx, m, info, func(ctx context.Context, req any) (any, error) {
		return g.modelInfer(ctx, req.(*inferMessage))
	})
}

func modelStreamInferHandler(srv any, stream grpc.ServerStream) error {
	return srv.(*grpcService).modelStreamInfer(stream)
}

// malformedIsInvalid is d with a request protobuf cannot read (cut
// short, a string that is not UTF-8) answered INVALID_ARGUMENT by each of
// its methods and streams, as a malformed inference request is. Each
// request goes through the codec as a checkedRequest, which keeps
// protobuf's error: grpc-go answers a codec's error INTERNAL, the
// server's fault, before any handler can say otherwise.
func malformedIsInvalid(d grpc.ServiceDesc) grpc.ServiceDesc {
	d.Methods = slices.Clone(d.Methods)
	for i := range d.Methods {
		h := d.Methods[i].Handler
		d.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error { return checked(v, dec) }, interceptor)
		}
	}
	d.Streams = slices.Clone(d.Streams)
	for i := range d.Streams {
		h := d.Streams[i].Handler
		d.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error { return h(srv, checkedStream{stream}) }
	}
	return d
}

// checked reads v with recv through the codec as a checkedRequest.
func checked(v any, recv func(any) error) error {
	r := checkedRequest{msg: v}
	if err := recv(&r); err != nil {
		return err
	}
	if r.err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed request: %v", r.err)
	}
	return nil
}

// checkedStream reads a stream's requests as checkedRequests.
type checkedStream struct{ grpc.ServerStream }

func (s checkedStream) RecvMsg(m any) error { return checked(m, s.ServerStream.RecvMsg) }

// checkedRequest is a request message (msg) on its way through the
// codec, with protobuf's error reading it, if any.
type checkedRequest struct {
	msg any
	err error
}
