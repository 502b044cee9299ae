package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/protocol"
)

// CheckNames is a unary interceptor that refuses, with INVALID_ARGUMENT,
// a request whose model name or version is longer than
// protocol.MaxNameBytes: every message about a model quotes its name, and
// a status message travels percent-encoded, so a 5 MB name of control
// bytes would come back several times larger. It also cuts any status
// message to protocol.MaxMessageBytes.
func CheckNames(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := checkNames(req); err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	return resp, clipStatus(err)
}

// clipStatus cuts err's status message to protocol.MaxMessageBytes.
func clipStatus(err error) error {
	if s, ok := status.FromError(err); ok && len(s.Message()) > protocol.MaxMessageBytes {
		return status.Error(s.Code(), protocol.ClipMessage(s.Message()))
	}
	return err
}

// CheckStreamNames is CheckNames for each message of a stream
// (ModelStreamInfer): a message with a name too long ends the stream. It
// also ends a streaming call's wait for its message (MessageWait): as it
// starts when the client streams its requests, which may rest between
// them; with its first message otherwise.
func CheckStreamNames(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.IsClientStream {
		Arrived(ss.Context())
	}
	return clipStatus(handler(srv, namesChecked{ss}))
}

type namesChecked struct{ grpc.ServerStream }

func (s namesChecked) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	Arrived(s.Context())
	if r, ok := m.(*checkedRequest); ok {
		m = r.msg
	}
	return checkNames(m)
}

// checkNames checks the model name and version fields a message of the
// inference service has: name and version (metadata, config, readiness,
// statistics, repository), or model_name and model_version (inference).
func checkNames(m any) error {
	var fields [2]struct{ field, value string }
	if n, ok := m.(interface{ GetName() string }); ok {
		fields[0].field, fields[0].value = "name", n.GetName()
	}
	if n, ok := m.(interface{ GetModelName() string }); ok {
		fields[0].field, fields[0].value = "model_name", n.GetModelName()
	}
	if v, ok := m.(interface{ GetVersion() string }); ok {
		fields[1].field, fields[1].value = "version", v.GetVersion()
	}
	if v, ok := m.(interface{ GetModelVersion() string }); ok {
		fields[1].field, fields[1].value = "model_version", v.GetModelVersion()
	}
	for _, f := range fields {
		if len(f.value) > protocol.MaxNameBytes {
			return status.Error(codes.InvalidArgument, fmt.Sprintf("%s of %d bytes, over the %d a name may have: %s",
				f.field, len(f.value), protocol.MaxNameBytes, protocol.Clip(f.value)))
		}
	}
	return nil
}
