package monitor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A /metrics page that never ends is refused at the scraper's bound, not
// read until the scrape's timeout (one grew the dashboard by 460 MB in
// two seconds).
func TestScrapeStopsAtItsBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; r.Context().Err() == nil && i < 10_000_000; i++ {
			if _, err := fmt.Fprintf(w, "infer_requests_total{model=\"m%d\",version=\"1\",outcome=\"success\"} 1\n", i); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := Scraper{Server: srv.URL, MaxBytes: 1 << 20}.Scrape(context.Background())
	if err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("an endless page: %v, want an error naming the bound", err)
	}
}

// A port with no /metrics (the admin port) or one that speaks HTTP/2 (the
// gRPC port) is named with the port to give, not left as a bare 404 or
// the frames' raw bytes.
func TestScrapeOfTheWrongPortSaysSo(t *testing.T) {
	admin := httptest.NewServer(http.NotFoundHandler())
	defer admin.Close()
	if _, err := (Scraper{Server: admin.URL}).Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "no metrics there: give the server's HTTP port") {
		t.Errorf("a port without /metrics: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // answers as an HTTP/2 server does: a SETTINGS frame
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf) // the request first, so that the client reads the frame as its answer
		c.Write([]byte("\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00\x40\x00\x00\x03\x00\x00\x00\xfa\x00\x06\x00\x00\x40\x00"))
	}()
	if _, err := (Scraper{Server: "http://" + l.Addr().String()}).Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "as a gRPC port does") {
		t.Errorf("a gRPC port: %v", err)
	}
}
