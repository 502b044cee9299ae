package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
)

// FrontOptions configure Front.
type FrontOptions struct {
	// ReadHeaderTimeout bounds reading a request's line and headers (on
	// a new connection from its accept, on a kept one from the request's
	// first byte); ReadTimeout its body, from the end of its headers;
	// IdleTimeout a keep-alive connection's wait for its next request.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// ConnState, when set, is told each connection's state changes, as
	// an http.Server's hook is (netlimit.ConnState).
	ConnState func(net.Conn, http.ConnState)
	// Draining reports whether the server is draining: every answer
	// then closes its connection.
	Draining func() bool
	// Panicked records a handler's panic (what it was serving, the
	// value) and returns the error to answer 500 with; nil: the panic's
	// value is the error.
	Panicked func(where string, v any) error
}

// frontBufferSize is a connection's read buffer, in bytes, which bounds
// a request's line and headers together (431 past it): 16 KiB, where
// Apache and nginx allow 8 KiB a line and Envoy 60 KiB in all. A body is
// read through it.
const frontBufferSize = 16 << 10

// Front returns the server of the HTTP inference port. Inference calls
// (POST /v2/models/{model}[/versions/{version}]/infer) are served on it
// directly, the hot path: headers parsed in place, the body read only
// once the core admits the call, the answer written from a pooled buffer,
// no goroutine but the connection's. Every other request, its body first
// read whole within the body limit, goes to h, the net/http handler of
// the same endpoints (Handler). Its timeouts, connection states and
// drain follow FrontOptions; a malformed request gets the protocol's
// error object with 400, 413 or 431 and the connection closes (at once,
// unanswered, when its headers do not come in time).
func (s *API) Front(h http.Handler, o FrontOptions) *fasthttp.Server {
	f := &front{api: s, opts: o, bridged: fasthttpadaptor.NewFastHTTPHandler(watched(h))}
	fs := &fasthttp.Server{
		Handler:        f.serve,
		ErrorHandler:   f.malformed,
		HeaderReceived: f.headerReceived,
		ExpectHandler:  f.expect,
		ReadTimeout:    o.ReadHeaderTimeout,
		IdleTimeout:    o.IdleTimeout,
		ReadBufferSize: frontBufferSize,
		// Bodies stream: the handler runs once the headers are in, with
		// at most the body's first byte read (MaxRequestBodySize), so
		// admission comes before the body and the body limit is ours.
		StreamRequestBody:            true,
		MaxRequestBodySize:           1,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true, // errors quote no request bytes
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       printfLogger{s.log},
	}
	if o.ConnState != nil {
		fs.ConnState = func(c net.Conn, st fasthttp.ConnState) { o.ConnState(c, httpState(st)) }
	}
	return fs
}

// watched is h with the bridged request's context ending when its client
// leaves (bridge) or h returns, as net/http's does. The watch ends with h:
// a streamed answer's handler returns after the bridge, and the server
// reads the connection again only once the stream has ended.
func watched(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone, ok := r.Context().Value(goneKey{}).(*goneWatch); ok {
			gone.handed.Store(true)
			r = r.WithContext(context.WithValue(gone.ctx, goneKey{}, gone))
			defer gone.end()
		}
		h.ServeHTTP(w, r)
	})
}

// httpState maps fasthttp's connection states to net/http's.
func httpState(st fasthttp.ConnState) http.ConnState {
	switch st {
	case fasthttp.StateNew:
		return http.StateNew
	case fasthttp.StateActive:
		return http.StateActive
	case fasthttp.StateIdle:
		return http.StateIdle
	case fasthttp.StateHijacked:
		return http.StateHijacked
	}
	return http.StateClosed
}

// front is Front's handler.
type front struct {
	api     *API
	opts    FrontOptions
	bridged fasthttp.RequestHandler
	gone    goneWatcher
}

// headerReceived bounds the body's read from the end of the headers. A
// request that announces a body over the limit is marked as waiting for
// "100 Continue", so that the server reads none of it and asks expect,
// which refuses it with 413 at once, where it would otherwise wait for
// the body's first byte.
func (f *front) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if int64(h.ContentLength()) > f.api.opts.MaxBodyBytes {
		h.Set(fasthttp.HeaderExpect, "100-continue")
	}
	return fasthttp.RequestConfig{ReadTimeout: f.opts.ReadTimeout, MaxRequestBodySize: 1}
}

// expect answers a request that waits for "100 Continue" before its
// body: 413 when the body it announces is over the limit, without reading
// it; go on otherwise.
func (f *front) expect(fc *fasthttp.RequestCtx) int {
	if want := contentLength(fc); want > f.api.opts.MaxBodyBytes {
		err := errBodyTooLarge(want, f.api.opts.MaxBodyBytes)
		f.answerError(fc, http.StatusRequestEntityTooLarge, err)
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusContinue
}

// serve routes one request: inference on the hot path, the rest bridged
// to net/http. A panic on the hot path answers 500 and is recorded; the
// bridged handler recovers its own.
func (f *front) serve(fc *fasthttp.RequestCtx) {
	if f.opts.Draining != nil && f.opts.Draining() {
		fc.SetConnectionClose()
	}
	modelName, versionName, ok := inferPath(fc)
	if !ok {
		f.bridge(fc)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("internal error: %v", v)
			if f.opts.Panicked != nil {
				err = f.opts.Panicked(string(fc.Method())+" "+string(fc.Path()), v)
			}
			fc.Response.Reset()
			f.answerError(fc, http.StatusInternalServerError, err)
		}
	}()
	f.infer(fc, modelName, versionName)
}

// infer answers an inference call to the model and version named.
func (f *front) infer(fc *fasthttp.RequestCtx, modelName, versionName []byte) {
	start := time.Now()
	c := frontCalls.Get().(*frontCall)
	model, version := intern(&c.model, modelName), intern(&c.version, versionName)
	c.f, c.fc, c.length = f, fc, contentLength(fc)
	c.body.Reader, c.body.timeout = fc.RequestBodyStream(), f.opts.ReadTimeout
	if c.body.Reader == nil {
		c.body.Reader = eof{}
	}
	f.gone.watchWith(&c.gone, fc.Conn(), start)
	call := c.x.prepare(model, version, start, c.header, fc.Request.Header.Peek(protocol.HeaderContentLength), c.length, c.read)
	answered := false
	defer func() { // after a panic too
		c.gone.end() // before the server reads the connection again
		c.x.finish(f.api.bodies, answered)
		if answered {
			c.f, c.fc, c.body.Reader = nil, nil, nil
			frontCalls.Put(c)
		}
	}()
	res, err := f.api.Infer(c.gone.ctx, call)
	if err != nil {
		f.answerError(fc, failure(f.api.log, err, fc.Response.Header.Set), err)
		return
	}
	c.x.headers(res, func(name string, value []byte) {
		fc.Response.Header.SetCanonical([]byte(name), value) // headers' names are canonical: no normalizing
	})
	fc.SetBody(c.x.answer)
	answered = true
}

// frontCall is an inference call on the front's hot path: its state
// (inference), its request and connection, and the hooks inference
// calls, bound once, when the pool makes it.
type frontCall struct {
	x      inference
	f      *front
	fc     *fasthttp.RequestCtx
	gone   goneWatch // reused, once it has ended
	length int64
	// model and version are the names the last call asked for.
	model, version string
	body           timedBody
	header         func(string) string
	read           func([]byte) ([]byte, error)
}

// frontCalls pools the front's calls (*frontCall).
var frontCalls = sync.Pool{New: func() any {
	c := new(frontCall)
	c.header = func(name string) string { return string(c.fc.Request.Header.Peek(name)) }
	c.read = c.readBody
	return c
}}

// readBody reads the request's body into buf, within the body limit.
func (c *frontCall) readBody(buf []byte) ([]byte, error) {
	body, err := readBody(&c.body, c.length, c.f.api.opts.MaxBodyBytes, buf, c.f.api.bodies, &c.x.held)
	c.gone.bodyRead.Store(err == nil)
	return body, err
}

// intern returns b as a string: *last when that holds the same bytes
// (calls name the same few models again and again), else a new string,
// kept in *last.
func intern(last *string, b []byte) string {
	if *last != string(b) {
		*last = string(b)
	}
	return *last
}

// eof is the body of a request that has none.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// bridge reads the request's body whole, within the body limit, and hands
// the request to the net/http handler.
func (f *front) bridge(fc *fasthttp.RequestCtx) {
	// A target net/http cannot parse (a malformed escape, CONNECT's
	// authority form) is the client's fault: 400, where the adaptor
	// would answer 500.
	if _, err := url.ParseRequestURI(string(fc.Request.Header.RequestURI())); err != nil || fc.IsConnect() {
		fc.SetConnectionClose()
		f.answerError(fc, http.StatusBadRequest, fmt.Errorf("%w: the request target is not a path (a malformed %%-escape, or CONNECT's host:port)", protocol.ErrBadRequest))
		return
	}
	if fc.RequestBodyStream() != nil {
		if want := contentLength(fc); want != 0 {
			var held int64
			defer func() { f.api.bodies.give(held) }()
			body, err := readBody(f.body(fc), want, f.api.opts.MaxBodyBytes, nil, f.api.bodies, &held)
			if err != nil {
				f.answerError(fc, core.Status(err), err)
				return
			}
			fc.Request.SetBodyRaw(body)
		} else {
			fc.Request.ResetBody() // nothing to read: the bridge must not wait on the stream
		}
	}
	gone := f.gone.watch(fc.Conn(), time.Now())
	gone.bodyRead.Store(true) // read above, whole
	fc.SetUserValue(goneKey{}, gone)
	f.bridged(fc)
	if !gone.handed.Load() { // the adaptor refused the request before the handler
		gone.end()
	}
}

// goneKey is the request's user value that holds its connection's watch
// (goneWatcher) for the bridged handler.
type goneKey struct{}

// body is the request's body stream, naming the read timeout.
func (f *front) body(fc *fasthttp.RequestCtx) timedBody {
	if s := fc.RequestBodyStream(); s != nil {
		return timedBody{Reader: s, timeout: f.opts.ReadTimeout}
	}
	return timedBody{Reader: bytes.NewReader(nil), timeout: f.opts.ReadTimeout}
}

// contentLength is the request's announced body length, -1 when unknown
// (chunked).
func contentLength(fc *fasthttp.RequestCtx) int64 {
	return max(int64(fc.Request.Header.ContentLength()), -1)
}

// answerError answers err as the protocol's error object with status.
func (f *front) answerError(fc *fasthttp.RequestCtx, status int, err error) {
	fc.SetStatusCode(status)
	fc.SetContentType("application/json")
	fc.SetBody(errorBody(err))
}

// malformed answers a request the server could not read: 431 for headers
// over the read buffer, 413 for a body over its limit, 408 for a body
// that did not begin in time, 400 otherwise; the connection closes (at
// once, unanswered, when the headers did not arrive in time). The answer names the fault, never the request's bytes: a
// request can carry credentials, and an answer is no larger than a few
// hundred bytes whatever provoked it.
func (f *front) malformed(fc *fasthttp.RequestCtx, err error) {
	status := http.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		status, err = http.StatusRequestHeaderFieldsTooLarge, fmt.Errorf("request line and headers over %d bytes", frontBufferSize)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, err = http.StatusRequestEntityTooLarge, errBodyTooLarge(f.api.opts.MaxBodyBytes+1, f.api.opts.MaxBodyBytes)
	case errors.As(err, &ne) && ne.Timeout():
		if strings.Contains(err.Error(), "request headers") || fc.ConnRequestNum() == 0 && !readSome(fc.Conn()) {
			// Headers that did not come in time: the connection closes
			// with no answer, as net/http closes it, so that a client that
			// connected early and has sent nothing yet never reads a 408
			// as the answer to a request it sends later. The server has
			// sent every earlier answer before it waited for the headers.
			_ = fc.Conn().Close()
			return
		}
		// A body's first byte that did not come: 408, which also sends
		// the answers before it still buffered (pipelined).
		status, err = http.StatusRequestTimeout, fmt.Errorf("%w: the body's first byte did not come within %v (read_timeout)", core.ErrBodyTimeout, f.opts.ReadTimeout)
	default:
		err = fmt.Errorf("malformed request: %s", fault(err))
	}
	fc.SetConnectionClose()
	f.answerError(fc, status, err)
}

// readSome reports whether conn has read anything since it was accepted
// or last went idle, where its listener keeps count (netlimit.Conn): a
// timeout with bytes read and the headers whole is the body's. Unknown:
// false.
func readSome(conn net.Conn) bool {
	r, ok := conn.(interface{ ReadSince() bool })
	return ok && r.ReadSince()
}

// fault is what a request parse error says, cut before any quote of the
// request's bytes (fasthttp's "buffer size=..., contents: ..." dump, a
// quoted token), clipped to maxFault bytes.
func fault(err error) string {
	msg := err.Error()
	for _, cut := range []string{"buffer size=", "\""} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = strings.TrimRight(msg[:i], ": ")
		}
	}
	if len(msg) > maxFault {
		msg = msg[:maxFault] + "..."
	}
	return strings.ToValidUTF8(msg, "?")
}

// maxFault bounds what a malformed request's answer says of its fault,
// in bytes.
const maxFault = 200

// inferPath parses an inference call's path, /v2/models/{model}/infer or
// /v2/models/{model}/versions/{version}/infer, of a POST, as the request
// wrote it (the names alias the request's header): a path with escapes
// (%), empty or dot segments goes to the net/http mux, which resolves it
// as it resolves every other route, so that no spelling of a path means
// one thing here and another there.
func inferPath(fc *fasthttp.RequestCtx) (model, version []byte, ok bool) {
	if !fc.IsPost() {
		return nil, nil, false
	}
	path := fc.Request.Header.RequestURI()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if bytes.IndexByte(path, '%') >= 0 || bytes.Contains(path, []byte("//")) || bytes.Contains(path, []byte("/.")) {
		return nil, nil, false
	}
	rest, ok := bytes.CutPrefix(path, []byte("/v2/models/"))
	if !ok {
		return nil, nil, false
	}
	if rest, ok = bytes.CutSuffix(rest, []byte("/infer")); !ok {
		return nil, nil, false
	}
	name, tail, versioned := bytes.Cut(rest, []byte("/"))
	if len(name) == 0 {
		return nil, nil, false
	}
	if !versioned {
		return name, nil, true
	}
	v, ok := bytes.CutPrefix(tail, []byte("versions/"))
	if !ok || len(v) == 0 || bytes.IndexByte(v, '/') >= 0 {
		return nil, nil, false
	}
	return name, v, true
}

// printfLogger logs fasthttp's messages, a connection's errors, at debug
// level, as net/http keeps its own quiet: a client that leaves mid-request
// is no news to an operator.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}
