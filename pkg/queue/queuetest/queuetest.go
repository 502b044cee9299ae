// Package queuetest starts real message brokers for tests: a NATS
// server with JetStream inside the test process, and Debian's
// redis-server as a child process on a loopback port.
package queuetest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/infer-serving/infer/pkg/queue"
)

// NATS starts a NATS server with JetStream on a free loopback port,
// keeping its streams under dir (in memory when dir is ""), stopped when
// the test ends. It returns the server and its URL.
func NATS(t testing.TB, dir string) (*queue.Embedded, string) {
	t.Helper()
	e, err := queue.StartEmbedded(queue.EmbeddedOptions{Host: "127.0.0.1", Port: -1, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e, e.URL()
}

// Redis starts redis-server on a free loopback port with its files in a
// temporary folder, stopped when the test ends, and returns its URL. A
// machine without redis-server fails the test: the test set-up (make
// test, scripts/setup-redis.sh) installs it.
func Redis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run scripts/setup-redis.sh (make test does), or apt-get install redis-server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("redis://127.0.0.1:%d", port)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d not ready within 10s: %v", port, err)
		}
	}
}
