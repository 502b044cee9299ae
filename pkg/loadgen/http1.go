package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
)

// HTTP1 is a plain-HTTP/1.1 target with a client of its own: requests are
// formatted once, connections are kept alive in a pool, and responses are
// parsed in place. Per request it costs a fraction of net/http's CPU, which
// on a small machine decides how much load a generator can offer. It times
// connect (new connections) and the request write itself, and takes the
// server's phases from Server-Timing.
type HTTP1 struct {
	addr     string
	requests [][]byte
	cold     bool
	idle     chan *conn1
	next     atomic.Uint64
}

type conn1 struct {
	c  net.Conn
	br *bufio.Reader
}

// readBuffer holds a response's head; a longer head is an error.
const readBuffer = 32 << 10

// NewHTTP1 returns a target sending reqs in turn over at most conns kept
// connections (a new one per request when cold). Every request must be
// plain http:// to the same host.
func NewHTTP1(reqs []HTTPRequest, conns int, cold bool) (*HTTP1, error) {
	if len(reqs) == 0 {
		return nil, errors.New("no request to send")
	}
	t := &HTTP1{cold: cold, idle: make(chan *conn1, max(conns, 1))}
	for _, r := range reqs {
		u, err := url.Parse(r.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("URL %q: the HTTP/1.1 client takes http://host[:port]/path", r.URL)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		if t.addr == "" {
			t.addr = host
		} else if t.addr != host {
			return nil, fmt.Errorf("URL %q: every request must go to %s", r.URL, t.addr)
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, u.RequestURI(), u.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
		if len(r.Body) > 0 || r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
		}
		if cold {
			b.WriteString("Connection: close\r\n")
		}
		b.WriteString("\r\n")
		b.Write(r.Body)
		t.requests = append(t.requests, b.Bytes())
	}
	return t, nil
}

var _ Target = (*HTTP1)(nil)

// Close closes the idle connections.
func (t *HTTP1) Close() {
	for {
		select {
		case c := <-t.idle:
			c.c.Close()
		default:
			return
		}
	}
}

// Do implements Target.
func (t *HTTP1) Do(ctx context.Context, r *Result) {
	t.send(ctx, r, int(t.next.Add(1)%uint64(len(t.requests))))
}

// send sends request i, as Do does.
func (t *HTTP1) send(ctx context.Context, r *Result, i int) {
	req := t.requests[i]
	deadline, _ := ctx.Deadline()
	r.Start = time.Now()
	for attempt := 0; ; attempt++ {
		r.Attempts = attempt + 1
		c, reused, err := t.get(ctx, r)
		if err != nil {
			r.End = time.Now()
			r.Fail(err)
			return
		}
		_ = c.c.SetDeadline(deadline)
		wrote := time.Now()
		_, err = c.c.Write(req)
		r.Phases.Set(profile.Write, time.Since(wrote))
		var resp response
		if err == nil {
			resp, err = readResponse(c.br)
		}
		if err != nil {
			c.c.Close()
			// A kept connection the server closed while idle fails before
			// any answer: send again, once, on a fresh one.
			if reused && attempt == 0 && (errors.Is(err, io.EOF) || errors.Is(err, errStale)) {
				continue
			}
			r.End = time.Now()
			r.Fail(err)
			return
		}
		r.End = time.Now()
		if resp.keepAlive && !t.cold {
			t.put(c)
		} else {
			c.c.Close()
		}
		if resp.status/100 != 2 {
			r.FailStatus(resp.status, string(resp.body))
			return
		}
		r.ServerReported = serverPhases(r, resp.serverTiming)
		return
	}
}

// get returns an idle connection, or dials one and times it as connect.
func (t *HTTP1) get(ctx context.Context, r *Result) (*conn1, bool, error) {
	if !t.cold {
		select {
		case c := <-t.idle:
			return c, true, nil
		default:
		}
	}
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err // no connection opened: none counted
	}
	r.Phases.Set(profile.Connect, time.Since(start))
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &conn1{c: c, br: bufio.NewReaderSize(c, readBuffer)}, false, nil
}

func (t *HTTP1) put(c *conn1) {
	select {
	case t.idle <- c:
	default:
		c.c.Close()
	}
}

// response is what Do needs of a response.
type response struct {
	status       int
	keepAlive    bool
	serverTiming string
	// body is kept only for an error status, and only up to
	// maxErrorBody: what the server said went wrong.
	body []byte
}

// maxErrorBody is the most of an error response's body kept, in bytes.
const maxErrorBody = 4 << 10

var errStale = errors.New("connection closed before a response")

// readResponse reads one HTTP/1.1 response from br, its body discarded.
// Informational (1xx) responses are skipped.
func readResponse(br *bufio.Reader) (response, error) {
	var resp response
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				return resp, errStale
			}
			return resp, fmt.Errorf("status line: %w", err)
		}
		// "HTTP/1.1 200 OK\r\n"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return resp, fmt.Errorf("malformed status line %q", trim(line))
		}
		code, err := strconv.Atoi(string(line[9:12]))
		if err != nil || code < 100 || code > 999 {
			return resp, fmt.Errorf("malformed status line %q", trim(line))
		}
		resp = response{status: code, keepAlive: line[7] == '1'}
		length, chunked := int64(-1), false
		for {
			h, err := br.ReadSlice('\n')
			if err != nil {
				return resp, fmt.Errorf("response header: %w", err)
			}
			h = trim(h)
			if len(h) == 0 {
				break
			}
			name, value, ok := bytes.Cut(h, []byte(":"))
			if !ok {
				return resp, fmt.Errorf("malformed header %q", h)
			}
			value = bytes.TrimSpace(value)
			switch {
			case asciiEqualFold(name, "content-length"):
				n, err := strconv.ParseInt(string(value), 10, 64)
				if err != nil || n < 0 {
					return resp, fmt.Errorf("malformed Content-Length %q", value)
				}
				length = n
			case asciiEqualFold(name, "transfer-encoding"):
				chunked = bytes.EqualFold(value, []byte("chunked"))
			case asciiEqualFold(name, "connection"):
				if bytes.EqualFold(value, []byte("close")) {
					resp.keepAlive = false
				} else if bytes.EqualFold(value, []byte("keep-alive")) {
					resp.keepAlive = true
				}
			case asciiEqualFold(name, "server-timing"):
				resp.serverTiming = string(value)
			}
		}
		if code < 200 {
			continue // informational: the real response follows
		}
		switch {
		case code == http.StatusNoContent || code == http.StatusNotModified:
		case chunked:
			if err := discardChunked(br); err != nil {
				return resp, err
			}
		case length >= 0 && code/100 != 2 && length <= maxErrorBody:
			resp.body = make([]byte, length)
			if _, err := io.ReadFull(br, resp.body); err != nil {
				return resp, fmt.Errorf("response body: %w", err)
			}
		case length >= 0:
			if _, err := br.Discard(int(length)); err != nil {
				return resp, fmt.Errorf("response body: %w", err)
			}
		default: // the body runs to the end of the connection
			resp.keepAlive = false
			if _, err := io.Copy(io.Discard, br); err != nil {
				return resp, fmt.Errorf("response body: %w", err)
			}
		}
		return resp, nil
	}
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		size, _, _ := bytes.Cut(trim(line), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("malformed chunk size %q", trim(line))
		}
		if n == 0 {
			for { // trailers, up to the empty line
				t, err := br.ReadSlice('\n')
				if err != nil {
					return fmt.Errorf("chunked trailer: %w", err)
				}
				if len(trim(t)) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return fmt.Errorf("chunk: %w", err)
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(trim(crlf)) != 0 {
			return errors.New("malformed chunk end")
		}
	}
}

func trim(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

// asciiEqualFold compares a header name with a lower-case name.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
