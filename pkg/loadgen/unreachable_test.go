package loadgen

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// With no server listening and no model named, the error says the server
// cannot be reached, not that a model should be named.
func TestUnreachableServerIsSaidSo(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, _, _, err = newV2HTTP(context.Background(), V2Options{URL: "http://" + addr, Conns: 1})
	if err == nil || !strings.Contains(err.Error(), "cannot reach http://"+addr) || !strings.Contains(err.Error(), "is infer serve running there?") || strings.Contains(err.Error(), "--model NAME") {
		t.Fatalf("no server at %s: %v, want it said that nothing answers", addr, err)
	}
}

// A server whose metadata never ends is said to be no inference server,
// past a bound, rather than read to the end or reported as broken JSON.
func TestEndlessMetadataIsSaidSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"`))
		for i := 0; i < 1<<16 && r.Context().Err() == nil; i++ {
			if _, err := w.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, _, _, err := newV2HTTP(context.Background(), V2Options{URL: srv.URL, Models: []string{"m"}, Conns: 1})
	if err == nil || !strings.Contains(err.Error(), "over 1024 KiB") {
		t.Fatalf("endless metadata: %v, want it named as over the bound", err)
	}
}

// Pointed at a port of another protocol, the error says which port that
// is and which to give: the metrics port's text, an HTTP/1.1 port asked
// for gRPC. They read as broken JSON and broken HTTP/2 frames before.
func TestWrongPortIsSaidSo(t *testing.T) {
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# HELP infer_requests_total Requests.\n"))
	}))
	defer metrics.Close()
	_, _, _, err := newV2HTTP(context.Background(), V2Options{URL: metrics.URL, Conns: 1})
	if err == nil || !strings.Contains(err.Error(), "as Prometheus metrics do: give the HTTP port") || strings.Contains(err.Error(), "--model NAME") {
		t.Errorf("the metrics port: %v, want it named", err)
	}
	_, _, _, err = newV2GRPC(context.Background(), V2Options{URL: strings.TrimPrefix(metrics.URL, "http://"), Conns: 1})
	if err == nil || !strings.Contains(err.Error(), "the port answers HTTP/1.1, not gRPC") {
		t.Errorf("gRPC to an HTTP/1.1 port: %v, want it named", err)
	}
}
