package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/internal/testrepo"
)

// A request whose model's queue is full is shed before its body is read:
// the server answers 429 with Retry-After to headers that announce a body
// it never receives, and closes the connection rather than read it.
func TestFullQueueShedsBeforeTheBodyIsRead(t *testing.T) {
	repo := testrepo.Open(t, map[string][2]string{"faulty": {faultyFile, faultyWarmup +
		"max_batch_size: 0\ndynamic_batching: {max_queue_size: 1}\n"}})
	s, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	m, err := repo.Model("faulty", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Stalls of about a second each, offered until one runs and one waits
	// in the queue (one offered before the worker took the first is shed).
	stall := fmt.Appendf(nil, `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0,0,500,0]}]}`)
	var wg sync.WaitGroup
	defer wg.Wait()
	for offered := 0; m.Stats().QueueLength != 1; offered++ {
		if offered == 50 {
			t.Fatal("the queue never filled")
		}
		wg.Go(func() { call(t, "POST", hs.URL+"/v2/models/faulty/infer", stall, nil) })
		time.Sleep(20 * time.Millisecond)
	}

	u, _ := url.Parse(hs.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers only: the 10 MB body never comes. Without admission before
	// the body, the server would wait for it until its read timeout.
	fmt.Fprintf(conn, "POST /v2/models/faulty/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{", u.Host)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Errorf("status %d, Retry-After %q, closing %v: want 429, a Retry-After and the connection closed", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	mm := call(t, "GET", metricsURL(t, s), nil, nil)
	if !strings.Contains(string(mm.body), `outcome="queue_full"`) {
		t.Errorf("the shed request is not counted as queue_full")
	}
}

// A client slow to send its body holds no place in its model's work: the
// body is read before the request takes its place, so clients that send
// their headers and then stall leave a small queue to the others.
func TestSlowBodiesHoldNoPlace(t *testing.T) {
	// One running and one forming place, none to wait in.
	repo := testrepo.Open(t, map[string][2]string{"mlp": {mlpFile, "max_batch_size: 1\ndynamic_batching: {max_queue_size: 1}\n"}})
	_, hs := start(t, repo, Options{})
	t.Cleanup(repo.Close)
	u, _ := url.Parse(hs.URL)
	for range 3 {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The headers and the body's first byte; the rest never comes.
		fmt.Fprintf(conn, "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", u.Host)
	}
	image := fmt.Appendf(nil, `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[%s0]}]}`, strings.Repeat("0,", 783))
	if r := call(t, "POST", hs.URL+"/v2/models/mlp/infer", image, nil); r.status != http.StatusOK {
		t.Fatalf("a request beside three stalled bodies: %d %s, want 200", r.status, r.body)
	}
}
