package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/grpcapi"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/netlimit"
)

// How long the server waits on a client, by default. Go's net/http waits
// forever unless told; these follow the practice of Go services facing
// the internet (a header deadline of seconds, an idle bound of minutes)
// and of Envoy as an edge proxy, which bounds idle connections and limits
// a connection's concurrent HTTP/2 streams.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers, from the
	// connection's first byte (or the end of the previous request).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading one request's body, from the end
	// of its headers; the handler's own run is not bounded by it.
	DefaultReadTimeout = time.Minute
	// DefaultIdleTimeout bounds how long a keep-alive HTTP connection, or
	// a gRPC connection with no stream open, stays open with nothing to do.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultGracePeriod bounds a shutdown, Kubernetes' default
	// terminationGracePeriodSeconds.
	DefaultGracePeriod = 30 * time.Second
)

// grpcReceiving is how many messages at --max-body-bytes the gRPC port
// holds, arriving or waiting for their answer, over every connection
// (grpcapi.ReceiveBudget), as the HTTP port holds as many bodies.
const grpcReceiving = 4

// maxConcurrentStreams bounds the gRPC streams (calls) one connection may
// have open at once, as HTTP/2 servers commonly do (Go's own is 250).
const maxConcurrentStreams = 250

// gRPC keepalive: a client may ping no more often than grpcMinPingInterval,
// with or without calls open; more often, the server closes its
// connection. The server pings a quiet connection every grpcPingInterval
// and drops it when the ping is not answered within grpcPingTimeout.
const (
	grpcMinPingInterval = 10 * time.Second
	grpcPingInterval    = 2 * time.Minute
	grpcPingTimeout     = 20 * time.Second
)

// withTransportDefaults fills in the transport settings left zero.
func (o Options) withTransportDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	o.DrainDelay = max(o.DrainDelay, 0)
	return o
}

// HTTPServer returns an http.Server for h (Handler or MetricsHandler)
// with the server's header-read and idle timeouts. It sets no write
// timeout: streamed generation answers for as long as it generates.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// HTTPFront returns the server of the HTTP inference port (see
// httpapi.Front): inference calls on its hot path, every other endpoint
// of Handler through net/http, with the server's timeouts.
func (s *Server) HTTPFront() *fasthttp.Server {
	return s.http.Front(s.Handler(), httpapi.FrontOptions{
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		ConnState:         netlimit.ConnState,
		Draining:          s.Draining,
		Panicked: func(where string, v any) error {
			return s.Panicked(core.ProtoHTTP, where, v)
		},
	})
}

// GRPCServerOptions are the options of a grpc.Server that serves this
// server (RegisterGRPC): the service's codec (grpcapi.Codec, which reads
// an inference request from its wire bytes), a message bound equal to MaxBodyBytes, a bound
// on the bytes of messages held over every connection
// (grpcapi.ReceiveBudget, through the transport credentials: no
// security), a bound on a call's wait for its request message
// (grpcapi.MessageWait, ReadTimeout), a bound on metadata, keepalive
// enforcement, an idle bound, a bound on concurrent streams, recovery of
// a call's panic into INTERNAL, and a bound on model names' length.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(grpcapi.Codec()),
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxBodyBytes, math.MaxInt32))),
		grpc.Creds(s.receiving.Credentials()),
		grpc.InTapHandle(s.messages.Tap),
		grpc.MaxHeaderListSize(grpcapi.MaxHeaderList), // grpc-go allows 16 MiB
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ConnectionTimeout(s.opts.ReadHeaderTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPingInterval, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: s.opts.IdleTimeout,
			Time:              grpcPingInterval,
			Timeout:           grpcPingTimeout,
		}),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	}
}

// guard is the HTTP handler's outer layer: it bounds the time to read a
// request's body and turns a handler's panic into a 500 for that request.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &guardedWriter{ResponseWriter: w}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			// A deadline for the body alone, lifted once it is read whole:
			// left in place, it would cancel a handler that runs past it.
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout)); err == nil {
				gw.body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: s.opts.ReadTimeout,
					small: r.ContentLength > 0 && r.ContentLength <= discardBytes}
				r.Body = gw.body
			}
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v) // net/http's way to abort a response: it handles it
				}
				err := s.Panicked(core.ProtoHTTP, r.Method+" "+r.URL.Path, v)
				if !gw.wrote {
					httpapi.WriteError(w, http.StatusInternalServerError, err)
					return
				}
				panic(http.ErrAbortHandler) // half a response is out: cut the connection
			}
		}()
		next.ServeHTTP(gw, r)
	})
}

// discardBytes is the largest unread body net/http reads and throws away
// after a response to keep the connection (its maxPostHandlerReadBytes,
// 256 KiB): a small body mostly arrived with its headers, and reading the
// rest is cheaper for both ends than a new connection.
const discardBytes = 256 << 10

// guardedWriter records whether a response has begun. An error answered
// before the request's body was read whole closes the connection, rather
// than leave net/http to read the rest of a large body nobody wants; a
// small one (discardBytes) net/http reads past, keeping the connection, so
// that a shed costs a client no new connection.
type guardedWriter struct {
	http.ResponseWriter
	body  *deadlineBody // nil: the request has no body
	wrote bool
}

func (w *guardedWriter) WriteHeader(status int) {
	if status >= 400 && !w.wrote && w.body != nil && !w.body.ended && !w.body.small {
		w.Header().Set("Connection", "close")
	}
	if status >= 200 { // 1xx responses are interim
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *guardedWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlineBody lifts the connection's read deadline once the body has
// been read whole, and names the timeout when the deadline cut it short.
// A body not read whole keeps the deadline, which then bounds net/http's
// own reading of what is left.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	ended   bool // read whole
	small   bool // of a known length up to discardBytes
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if !b.ended {
			b.ended = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: the body took over %v (read_timeout)", core.ErrBodyTimeout, b.timeout)
	}
	return n, err
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	grpcapi.Arrived(ctx) // a unary handler runs once its message is in
	defer func() {
		if v := recover(); v != nil {
			resp, err = nil, status.Error(codes.Internal, s.Panicked(core.ProtoGRPC, info.FullMethod, v).Error())
		}
	}()
	return grpcapi.CheckNames(ctx, req, info, handler) // one interceptor: a chain costs closures per call
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = status.Error(codes.Internal, s.Panicked(core.ProtoGRPC, info.FullMethod, v).Error())
		}
	}()
	return grpcapi.CheckStreamNames(srv, ss, info, handler)
}
