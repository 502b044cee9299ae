package modelhost

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connPair is two ends of a host's kind of socket.
func connPair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newConn(fds[0], "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := newConn(fds[1], "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return &a, &b
}

// Messages arrive whole whatever their length (up to what the socket's
// send buffer takes, 128 KiB here), those past the
// receive buffer through the announcement of their length, while the
// connection's own buffer stays small; a message over maxMessage is
// refused by its sender.
func TestConnCarriesLongMessagesWithASmallBuffer(t *testing.T) {
	a, b := connPair(t)
	for _, n := range []int{1, smallMessage, smallMessage + 1, 128 << 10} {
		msg := bytes.Repeat([]byte{opLoad}, n)
		msg[n-1] = byte(n)
		if err := a.Send(msg); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		got, err := b.Recv(5 * time.Second)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes sent, %d received (%v)", n, len(got), err)
		}
		if len(b.buf) != smallMessage {
			t.Fatalf("after a message of %d bytes the receive buffer holds %d, want %d", n, len(b.buf), smallMessage)
		}
	}
	if err := a.Send(make([]byte, maxMessage+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a message over maxMessage: %v, want it refused", err)
	}
	// A length past maxMessage announced by a broken peer is an error,
	// not an allocation.
	if err := a.write([]byte{opLarge, 0, 0, 0, 0, 0, 0, 0, 0x7f}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Recv(5 * time.Second); err == nil || !strings.Contains(err.Error(), "announced") {
		t.Errorf("an announced length over maxMessage: %v, want an error", err)
	}
}
