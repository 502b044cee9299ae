package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/profile"
)

// HTTPRequest is one request an HTTP target sends.
type HTTPRequest struct {
	Method, URL string
	Header      http.Header
	Body        []byte
}

// HTTP sends HTTP requests, in turn from Requests: plain endpoints and the
// Open Inference Protocol's infer alike. It times DNS and connect (new
// connections only) and the request write, and takes the server's phases
// from a Server-Timing header when there is one.
type HTTP struct {
	Client   *http.Client
	Requests []HTTPRequest
	next     atomic.Uint64
}

// NewHTTPClient returns a client for a load of up to conns connections to
// one host; cold opens a new connection for every request, to show the
// cost of TCP set-up.
func NewHTTPClient(conns int, cold bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableKeepAlives:   cold,
		DisableCompression:  true,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}}
}

var _ Target = (*HTTP)(nil)

// Do implements Target.
func (h *HTTP) Do(ctx context.Context, r *Result) {
	h.send(ctx, r, int(h.next.Add(1)%uint64(len(h.Requests))))
}

// send sends request i, as Do does.
func (h *HTTP) send(ctx context.Context, r *Result, i int) {
	spec := &h.Requests[i]
	var dnsStart, connStart, connDone, gotConn, wrote time.Time
	reused := false
	trace := &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { dnsStart = time.Now() },
		ConnectStart: func(string, string) { connStart = time.Now() },
		ConnectDone:  func(string, string, error) { connDone = time.Now() },
		GotConn: func(i httptrace.GotConnInfo) {
			gotConn, reused = time.Now(), i.Reused
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote = time.Now() },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), spec.Method, spec.URL, bytes.NewReader(spec.Body))
	if err != nil {
		r.Start, r.End = time.Now(), time.Now()
		r.Fail(err)
		return
	}
	req.Header = spec.Header
	r.Start = time.Now()
	resp, err := h.Client.Do(req)
	if err != nil {
		r.End = time.Now()
		r.Fail(err)
		return
	}
	var said []byte
	if resp.StatusCode/100 != 2 { // what the server said went wrong
		said, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.End = time.Now()
	if err != nil {
		r.Fail(err)
		return
	}
	if !reused && !connDone.IsZero() {
		from := connStart
		if !dnsStart.IsZero() {
			from = dnsStart
		}
		r.Phases.Set(profile.Connect, connDone.Sub(from))
	}
	if !wrote.IsZero() && !gotConn.IsZero() {
		r.Phases.Set(profile.Write, wrote.Sub(gotConn))
	}
	if resp.StatusCode/100 != 2 {
		r.FailStatus(resp.StatusCode, string(said))
		return
	}
	r.ServerReported = serverPhases(r, resp.Header.Get("Server-Timing"))
}

// serverPhases copies the server's own phases from a Server-Timing value.
func serverPhases(r *Result, serverTiming string) bool {
	t, ok := profile.ParseServerTiming(serverTiming)
	if !ok {
		return false
	}
	for _, p := range profile.ServerPhases {
		r.Phases.Set(p, t.Get(p))
	}
	return true
}

// GRPC sends Open Inference Protocol ModelInfer calls, in turn from
// Requests, and takes the server's phases from its trailing metadata.
type GRPC struct {
	Client   inferencepb.GRPCInferenceServiceClient
	Requests []*inferencepb.ModelInferRequest
	next     atomic.Uint64
}

var _ Target = (*GRPC)(nil)

// Do implements Target.
func (g *GRPC) Do(ctx context.Context, r *Result) {
	g.send(ctx, r, int(g.next.Add(1)%uint64(len(g.Requests))))
}

// send sends request i, as Do does.
func (g *GRPC) send(ctx context.Context, r *Result, i int) {
	req := g.Requests[i]
	var trailer metadata.MD
	r.Start = time.Now()
	_, err := g.Client.ModelInfer(ctx, req, grpc.Trailer(&trailer))
	r.End = time.Now()
	if err != nil {
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.DeadlineExceeded:
			r.Err, r.Kind = err, KindTimeout
		case codes.Unknown:
			r.Fail(err)
		default:
			r.Err, r.Kind = err, "grpc "+st.Code().String()
		}
		return
	}
	r.ServerReported = serverPhases(r, strings.Join(trailer.Get("server-timing"), ","))
}
