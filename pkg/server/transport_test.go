package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Routes only these tests reach: handlers that panic, behind the same
// outer layers as every endpoint of the real mux.
func init() {
	testRoutes = func(s *Server, mux *http.ServeMux) {
		mux.HandleFunc("GET /test/panic", func(http.ResponseWriter, *http.Request) { panic("test: a handler's bug") })
		mux.HandleFunc("GET /test/panic-after-write", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("half"))
			_ = http.NewResponseController(w).Flush()
			panic("test: a bug after the response began")
		})
		mux.HandleFunc("GET /test/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	}
}

// startHTTP serves the bundled models through s.HTTPFront, timeouts
// included, on a loopback port.
func startHTTP(t *testing.T, opts Options) (*Server, *frontServer) {
	t.Helper()
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFront(t, s)
	t.Cleanup(func() { hs.Close(); s.Close(); repo.Close() })
	return s, hs
}

// rawRequest sends head, then body, on a fresh connection, half-closes it
// when close is set, and returns the status and body of the answer.
func rawRequest(t *testing.T, addr, head, body string, close bool) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head+body); err != nil {
		t.Fatal(err)
	}
	if close {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func inferHead(addr string, length int64) string {
	return fmt.Sprintf("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, length)
}

// A body announced at the limit but never sent costs the server what
// arrived, not what was announced.
func TestBodyBufferGrowsOnlyAsBytesArrive(t *testing.T) {
	const limit, clients = 64 << 20, 4
	_, hs := startHTTP(t, Options{MaxBodyBytes: limit})
	addr := hs.Listener.Addr().String()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range clients {
		status, body := rawRequest(t, addr, inferHead(addr, limit), "{", true)
		if status != http.StatusBadRequest || !strings.Contains(body, "after 1 bytes") {
			t.Fatalf("a body cut short after 1 byte: %d %s, want 400 naming the bytes read", status, body)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("%d clients that each announced %d bytes and sent 1 made the server allocate %d bytes", clients, limit, grew)
	}
}

func TestBodyOverTheLimitIsRefusedNamingIt(t *testing.T) {
	_, hs := startHTTP(t, Options{MaxBodyBytes: 1 << 10})
	addr := hs.Listener.Addr().String()
	// Announced: refused before a byte of the body is read.
	status, body := rawRequest(t, addr, inferHead(addr, 1<<30), "", false)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limit of 1024 bytes") {
		t.Fatalf("1 GiB announced: %d %s, want 413 naming the 1024-byte limit", status, body)
	}
	// Announced by a client that waits for "100 Continue": refused with
	// no byte of the body sent.
	expect := strings.Replace(inferHead(addr, 1<<30), "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1)
	status, body = rawRequest(t, addr, expect, "", false)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limit of 1024 bytes") {
		t.Fatalf("1 GiB announced with Expect: %d %s, want 413 naming the 1024-byte limit", status, body)
	}
	// Chunked: refused once the limit is passed.
	req, _ := http.NewRequest("POST", hs.URL+"/v2/models/mlp/infer", io.MultiReader(strings.NewReader("{"), bytes.NewReader(bytes.Repeat([]byte(" "), 4<<10))))
	resp, err := httpClient.Do(req) // no length: sent chunked
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "limit of 1024 bytes") {
		t.Fatalf("chunked body over the limit: %d %s, want 413 naming the limit", resp.StatusCode, b)
	}
}

// A binary-extension body whose tensor part alone, by its framing, passes
// the model's bound on one request's bytes is refused with 413 once the
// call is admitted, before the body is read.
func TestBinaryPartOverTheModelsBoundIsRefusedUnread(t *testing.T) {
	_, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	// mlp: twice a full batch of 64 rows of 784 FP32 is 401,408 bytes.
	const header = 100
	head := strings.Replace(inferHead(addr, header+(32<<20)), "\r\n\r\n", fmt.Sprintf("\r\n%s: %d\r\n\r\n", protocol.HeaderContentLength, header), 1)
	status, body := rawRequest(t, addr, head, "{", false) // the rest is never sent
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "twice a full batch") {
		t.Fatalf("32 MiB of binary data announced for mlp: %d %s, want 413 naming the model's bound", status, body)
	}
	// A header length that the headers alone show wrong: 400, unread too.
	for _, hl := range []string{"-5", "abc", fmt.Sprint(64 << 10)} {
		head := strings.Replace(inferHead(addr, 1000), "\r\n\r\n", fmt.Sprintf("\r\n%s: %s\r\n\r\n", protocol.HeaderContentLength, hl), 1)
		status, body := rawRequest(t, addr, head, "{", false)
		if status != http.StatusBadRequest || !strings.Contains(body, protocol.HeaderContentLength) {
			t.Fatalf("%s %s on a body of 1000 bytes: %d %s, want 400 naming it", protocol.HeaderContentLength, hl, status, body)
		}
	}
}

// A body that trickles in is cut at the read timeout with 408; the
// timeout bounds the body alone, not the handler that runs after it.
func TestSlowBodyTimesOut(t *testing.T) {
	_, hs := startHTTP(t, Options{ReadTimeout: 200 * time.Millisecond})
	addr := hs.Listener.Addr().String()
	start := time.Now()
	status, body := rawRequest(t, addr, inferHead(addr, 100), `{"inputs":`, false)
	if status != http.StatusRequestTimeout || !strings.Contains(body, "read_timeout") {
		t.Fatalf("slow body: %d %s, want 408 naming read_timeout", status, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("slow body answered after %v, want about the 200ms read timeout", took)
	}
}

// Made-up model names, over either protocol, all count under one label
// value: they add no series per name.
func TestUnknownModelNamesCountUnderOneLabel(t *testing.T) {
	s, hs := startHTTP(t, Options{})
	c, _ := serveGRPC(t, s)
	image := &protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float32, 784))}}
	for i := range 20 {
		name := fmt.Sprintf("made-up-%d", i)
		if r, _ := infer(t, hs.URL, name, image, true); r.status != http.StatusNotFound {
			t.Fatalf("unknown model over HTTP: %d %s", r.status, r.body)
		}
		if _, err := c.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: name}); code(err) != codes.NotFound {
			t.Fatalf("unknown model over gRPC: %v", err)
		}
	}
	text := scrape(t, s)
	if strings.Contains(text, "made-up") {
		t.Fatal("a made-up model name became a label value")
	}
	for _, want := range []string{
		`infer_requests_total{model="_unknown",outcome="not_found",protocol="http",version=""} 20`,
		`infer_requests_total{model="_unknown",outcome="not_found",protocol="grpc",version=""} 20`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A known model's bad version keeps the model's name.
	if r, _ := infer(t, hs.URL, "mlp/versions/99", image, true); r.status != http.StatusNotFound {
		t.Fatalf("unknown version: %d %s", r.status, r.body)
	}
	if text := scrape(t, s); !strings.Contains(text, `infer_requests_total{model="mlp",outcome="not_found",protocol="http",version=""} 1`) {
		t.Error("a known model's unknown version was not counted under the model's name")
	}
}

// syncBuffer is a log destination the server and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A handler's panic answers its request with 500, is logged with its
// stack and counted, and the server goes on serving; net/http's own
// abort panic still aborts.
func TestHTTPPanicIsRecovered(t *testing.T) {
	var logs syncBuffer
	s, hs := startHTTP(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r := call(t, "GET", hs.URL+"/test/panic", nil, nil)
	if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), `{"error":"internal error serving GET /test/panic"}`) {
		t.Fatalf("panicking handler: %d %s, want 500", r.status, r.body)
	}
	if l := logs.String(); !strings.Contains(l, `"panic":"test: a handler's bug"`) || !strings.Contains(l, "transport_test.go") {
		t.Fatalf("the panic was not logged with its stack:\n%s", l)
	}
	// Half a response out: the connection is cut, the client sees an error.
	if resp, err := httpClient.Get(hs.URL + "/test/panic-after-write"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("a response a panic cut short was read whole")
		}
	}
	if _, err := httpClient.Get(hs.URL + "/test/abort"); err == nil {
		t.Fatal("http.ErrAbortHandler did not abort the response")
	}
	if r := call(t, "GET", hs.URL+"/v2/health/live", nil, nil); r.status != http.StatusOK {
		t.Fatalf("live after panics: %d", r.status)
	}
	if text := scrape(t, s); !strings.Contains(text, `infer_panics_total{protocol="http"} 2`) || !strings.Contains(text, `infer_panics_total{protocol="grpc"} 0`) {
		t.Fatalf("infer_panics_total: want 2 for http (the abort is not a bug), 0 for grpc:\n%s", grepLines(text, "infer_panics_total"))
	}
}

// panicService is a gRPC service, registered on a server built with the
// real options, whose calls panic.
var panicService = grpc.ServiceDesc{
	ServiceName: "test.Panic",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Unary", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panic/Unary"}
		return ic(ctx, in, info, func(context.Context, any) (any, error) { panic("test: a unary call's bug") })
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Stream", ServerStreams: true, ClientStreams: true,
		Handler: func(any, grpc.ServerStream) error { panic("test: a stream's bug") }}},
}

func TestGRPCPanicIsRecovered(t *testing.T) {
	s, _ := startHTTP(t, Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	g := grpc.NewServer(s.GRPCServerOptions()...)
	g.RegisterService(&panicService, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Invoke(ctx, "/test.Panic/Unary", &emptypb.Empty{}, &emptypb.Empty{})
	if code(err) != codes.Internal || !strings.Contains(err.Error(), "internal error serving /test.Panic/Unary") {
		t.Fatalf("panicking unary call: %v, want INTERNAL", err)
	}
	stream, err := conn.NewStream(ctx, &panicService.Streams[0], "/test.Panic/Stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(&emptypb.Empty{}); code(err) != codes.Internal {
		t.Fatalf("panicking stream: %v, want INTERNAL", err)
	}
	if text := scrape(t, s); !strings.Contains(text, `infer_panics_total{protocol="grpc"} 2`) {
		t.Fatalf("infer_panics_total: want 2 for grpc:\n%s", grepLines(text, "infer_panics_total"))
	}
}

// grepLines returns text's lines that contain s.
func grepLines(text, s string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Requests written back to back on one connection, an inference call
// (the hot path) between two others (bridged to net/http), are answered
// in order, each in full.
func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	_, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	conn, inferCall := pipelineConn(t, addr)
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET /v2/models/mlp/ready HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	b.WriteString(inferCall)
	fmt.Fprintf(&b, "GET /v2/models/nosuch HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusNotFound} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("answer %d: %d %s, want %d", i, resp.StatusCode, got, want)
		}
		if i == 1 {
			rhl, err := protocol.ParseHeaderLength(resp.Header.Get(protocol.HeaderContentLength))
			if err != nil {
				t.Fatal(err)
			}
			out, err := protocol.DecodeResponse(got, rhl)
			if err != nil || len(out.Outputs) != 1 || out.Outputs[0].Shape[1] != 10 {
				t.Fatalf("the inference answer: %v %+v", err, out)
			}
			if resp.Header.Get("Server-Timing") == "" {
				t.Fatal("the inference answer has no Server-Timing")
			}
		}
	}
}

// A request the server cannot parse is answered 400 naming the fault,
// quoting none of its bytes: its headers may carry credentials.
func TestMalformedRequestAnswerQuotesNothing(t *testing.T) {
	_, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	head := fmt.Sprintf("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer SECRET-TOKEN\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", addr)
	status, body := rawRequest(t, addr, head, "{}", false)
	if status != http.StatusBadRequest || !strings.Contains(body, "content-length") || strings.Contains(body, "SECRET") || len(body) > 512 {
		t.Fatalf("duplicate Content-Length: %d %s, want 400 naming it, quoting nothing", status, body)
	}
}

// A request target that is not a path (a malformed %-escape on any route,
// CONNECT's host:port) is the client's fault: 400 with the protocol's
// error object, never the 500 the bridge to net/http once answered.
func TestUnparsableRequestTargetIs400(t *testing.T) {
	_, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	for _, line := range []string{"POST /v2/models/mlp%zz/infer", "GET /v2%", "GET /v1/models/%zz", "CONNECT " + addr} {
		status, body := rawRequest(t, addr, fmt.Sprintf("%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\n\r\n", line, addr), "{}", false)
		if status != http.StatusBadRequest || !strings.Contains(body, `"error"`) || !strings.Contains(body, "request target") {
			t.Errorf("%s: %d %s, want 400 naming the request target", line, status, body)
		}
	}
}

// HTTP/1.0 has no chunked transfer coding: a streamed answer asked over
// it is refused with a 400 naming the field and the fix, never sent
// chunked; unstreamed, the same request is answered.
func TestStreamOverHTTP10IsRefused(t *testing.T) {
	_, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	for _, c := range []struct{ path, body, want string }{
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"hi","max_tokens":2,"stream":true}`, "stream: a streamed answer needs HTTP/1.1"},
		{"/v2/models/tiny-gpt/generate_stream", `{"text_input":"hi","parameters":{"max_tokens":2}}`, "generate_stream: a streamed answer needs HTTP/1.1"},
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"hi","max_tokens":2}`, ""},
	} {
		head := fmt.Sprintf("POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.path, addr, len(c.body))
		status, body := rawRequest(t, addr, head, c.body, false)
		switch {
		case c.want == "" && status != http.StatusOK:
			t.Errorf("%s unstreamed over HTTP/1.0: %d %s", c.path, status, body)
		case c.want != "" && (status != http.StatusBadRequest || !strings.Contains(body, c.want)):
			t.Errorf("%s streamed over HTTP/1.0: %d %s, want 400 naming %q", c.path, status, body, c.want)
		}
	}
}

// A client that leaves a streamed answer is counted as canceled, not as
// the server's error: over OpenAI's completions and Triton's
// generate_stream alike.
func TestClientLeavingAStreamIsCanceled(t *testing.T) {
	s, hs := startHTTP(t, Options{})
	addr := hs.Listener.Addr().String()
	for i, c := range []struct{ path, body string }{
		{"/v1/completions", `{"model":"tiny-gpt","prompt":"hello world","max_tokens":400,"stream":true}`},
		{"/v2/models/tiny-gpt/generate_stream", `{"text_input":"hello world","parameters":{"max_tokens":400}}`},
	} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", c.path, addr, len(c.body), c.body)
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: no event before the stream ended: %v", c.path, err)
			}
			if strings.HasPrefix(line, "data:") {
				break
			}
		}
		conn.Close()
		for deadline := time.Now().Add(10 * time.Second); countCanceled(t, scrape(t, s)) < i+1; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stream its client left was never counted canceled", c.path)
			}
		}
	}
}

// countCanceled sums tiny-gpt's canceled requests in a scrape, failing
// the test at any counted as an error.
func countCanceled(t *testing.T, text string) int {
	t.Helper()
	total := 0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "infer_requests_total{") || !strings.Contains(line, `model="tiny-gpt"`) {
			continue
		}
		if strings.Contains(line, `outcome="error"`) {
			t.Fatalf("a client that left counted as an error: %s", line)
		}
		if strings.Contains(line, `outcome="canceled"`) {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[len(f)-1])
			total += n
		}
	}
	return total
}

// A connection that sends nothing, or part of its headers, within the
// header timeout is closed with no answer: a client that connected early
// must not read a 408 as the answer to a request it sends later.
func TestHeaderTimeoutClosesWithoutAnswer(t *testing.T) {
	_, hs := startHTTP(t, Options{ReadHeaderTimeout: 200 * time.Millisecond})
	addr := hs.Listener.Addr().String()
	for _, sent := range []string{"", "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(conn, sent)
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || len(got) != 0 {
			t.Fatalf("after %q: read %q, %v; want the connection closed with no answer", sent, got, err)
		}
	}
}

// An answer written behind by a pipelined request whose body never
// begins is sent, not dropped with the connection: the late request gets
// 408 naming the read timeout.
func TestPipelinedAnswerSurvivesALaterBodyTimeout(t *testing.T) {
	_, hs := startHTTP(t, Options{ReadTimeout: 200 * time.Millisecond})
	addr := hs.Listener.Addr().String()
	conn, inferCall := pipelineConn(t, addr)
	fmt.Fprintf(conn, "%sPOST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n", inferCall, addr)
	br := bufio.NewReader(conn)
	for i, want := range []int{http.StatusOK, http.StatusRequestTimeout} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == http.StatusRequestTimeout && !strings.Contains(string(got), "read_timeout") {
			t.Fatalf("answer %d: %d %s, want %d", i, resp.StatusCode, got, want)
		}
	}
}

// A body announced within the limit whose first byte never comes is
// answered 408 naming the read timeout, on a connection's first request
// as on a later one.
func TestBodyThatNeverBeginsTimesOut(t *testing.T) {
	_, hs := startHTTP(t, Options{ReadTimeout: 200 * time.Millisecond})
	addr := hs.Listener.Addr().String()
	status, body := rawRequest(t, addr, inferHead(addr, 100), "", false)
	if status != http.StatusRequestTimeout || !strings.Contains(body, "read_timeout") {
		t.Fatalf("a body that never begins: %d %s, want 408 naming read_timeout", status, body)
	}
}

// pipelineConn dials addr, with a deadline for the whole exchange (closed
// with the test), and returns an mlp inference call in the binary
// extension, written whole, to send on it.
func pipelineConn(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	body, hl, err := (&protocol.InferRequest{Inputs: image()}).Encode(true)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, fmt.Sprintf("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\n%s: %d\r\nContent-Length: %d\r\n\r\n%s",
		addr, protocol.HeaderContentLength, hl, len(body), body)
}

// A client that leaves a call running past the read timeout is noticed:
// the watch of its connection outlives the body's read deadline. It once
// ended with that deadline, and a call (a long completion, a slow model)
// ran on to its end for no one.
func TestClientLeavingAfterTheReadTimeoutIsCanceled(t *testing.T) {
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const bound = 200 * time.Millisecond
	s, err := New(repo, Options{ReadTimeout: bound, AllowFaultInjection: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := serveFront(t, s)
	t.Cleanup(func() { hs.Close(); s.Close(); repo.Close() })
	if err := s.SetFault("mlp", 1, &Fault{Latency: time.Minute}); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Repository().Model("mlp", 0)
	body, _, err := (&protocol.InferRequest{Inputs: runner.SyntheticInputs(m.Metadata().Inputs, 1, true)}).Encode(false)
	if err != nil {
		t.Fatal(err)
	}
	addr := hs.Listener.Addr().String()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	time.Sleep(3 * bound) // well past the body's read deadline
	conn.Close()
	want := `infer_requests_total{model="mlp",outcome="canceled",protocol="http",version="1"} 1`
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(scrape(t, s), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call its client left after the read timeout was not canceled (its model's latency is a minute)")
		}
	}
}
