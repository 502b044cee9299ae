package loadgen

import (
	"context"
	"net"
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
