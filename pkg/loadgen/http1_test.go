package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		keep     bool
		timing   string
		rest     string // what must be left unread: the next response
		err      string
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer-Timing: infer;dur=1\r\n\r\nhelloNEXT", 200, true, "infer;dur=1", "NEXT", ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: v\r\n\r\nNEXT", 200, true, "", "NEXT", ""},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, "", "NEXT", ""},
		{"close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 503, false, "", "", ""},
		{"to the end", "HTTP/1.1 200 OK\r\n\r\nbody until close", 200, false, "", "", ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, "", "", ""},
		{"informational first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxNEXT", 200, true, "", "NEXT", ""},
		{"garbage", "SSH-2.0-OpenSSH\r\n", 0, false, "", "", "malformed status line"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, false, "", "", "Content-Length"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, false, "", "", "body"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, false, "", "", "chunk size"},
		{"closed", "", 0, false, "", "", "connection closed"},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		resp, err := readResponse(br)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		rest, _ := br.Peek(br.Buffered())
		if err != nil || resp.status != tc.status || resp.keepAlive != tc.keep || resp.serverTiming != tc.timing || string(rest) != tc.rest {
			t.Errorf("%s: %+v %v, rest %q", tc.name, resp, err, rest)
		}
	}
}

// FuzzReadResponse: no input makes the parser panic or loop; what it
// accepts has a real status code.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 500 x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		resp, err := readResponse(bufio.NewReader(strings.NewReader(string(in))))
		if err == nil && (resp.status < 200 || resp.status > 999) {
			t.Fatalf("accepted status %d", resp.status)
		}
	})
}

// The HTTP/1.1 client against a real server: kept connections, a fresh
// one after the server closes, the server's phases, and statuses.
func TestHTTP1AgainstRealServer(t *testing.T) {
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(count.Add(1))
		if r.Header.Get("X-Test") != "yes" || r.Host == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Server-Timing", "queue;dur=0.001, infer;dur=0.005") // less than any real round trip
		if n%5 == 0 {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprint(w, strings.Repeat("x", n%3*5000)) // some bodies chunked (no length), some not
	}))
	defer srv.Close()
	target, err := NewHTTP1([]HTTPRequest{{Method: "POST", URL: srv.URL + "/infer?q=1", Header: http.Header{"X-Test": {"yes"}}, Body: []byte("{}")}}, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	sum, err := Run(context.Background(), target, Options{Concurrency: 4, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 200 || sum.ServerReported != 200 || sum.PhaseSum[profile.Infer] != 200*5*time.Microsecond {
		t.Fatalf("ok %d, reported %d, infer %v, errors %v", sum.OK, sum.ServerReported, sum.PhaseSum[profile.Infer], sum.Errors)
	}
	// Every fifth response closed its connection: about 40 were opened, and
	// their connect times are counted apart.
	if sum.NewConns < 40 || sum.NewConns > 60 || sum.Connects.TotalCount() != sum.NewConns {
		t.Fatalf("%d new connections, %d connect times", sum.NewConns, sum.Connects.TotalCount())
	}
	cold, _ := NewHTTP1([]HTTPRequest{{Method: "POST", URL: srv.URL + "/", Header: http.Header{"X-Test": {"yes"}}}}, 4, true)
	if sum, _ := Run(context.Background(), cold, Options{Concurrency: 2, Requests: 20}); sum.NewConns != 20 || sum.OK != 20 {
		t.Fatalf("cold: %d new connections for %d requests", sum.NewConns, sum.OK)
	}
	// Refused connections were counted as opened (the report read
	// "connections 10 opened" with every request refused).
	refused, _ := NewHTTP1([]HTTPRequest{{Method: "GET", URL: "http://127.0.0.1:1/"}}, 2, false)
	if sum, _ := Run(context.Background(), refused, Options{Concurrency: 2, Requests: 10}); sum.NewConns != 0 || sum.Connects.TotalCount() != 0 || sum.OK != 0 {
		t.Fatalf("refused: %d new connections, %d connect times, %d answered; want none", sum.NewConns, sum.Connects.TotalCount(), sum.OK)
	}
	if _, err := NewHTTP1([]HTTPRequest{{Method: "GET", URL: "https://example.test/"}}, 1, false); err == nil {
		t.Fatal("https accepted by the plain HTTP/1.1 client")
	}
}
