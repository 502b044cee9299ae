package netlimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenTCP listens on addr ("host:port") over plain TCP, the kind of
// listener Quiesce works on. net.Listen makes a Multipath TCP socket where
// the kernel supports it (Go 1.24 on), which takes no socket filter and
// which a model server behind load balancers has no use for.
func ListenTCP(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(ctx, "tcp", addr)
}

// Quiesce readies the listener to close without cutting a connection:
// it stops the kernel from completing new handshakes on it, then waits,
// checking every poll, until the connections the kernel had already
// completed (its accept queue) have all been taken by Accept, or stop is
// closed. It returns the connections still queued, 0 when closing the
// listener now cuts none.
//
// Closing a listening socket resets every connection in its accept
// queue, and a client considers those connected: it may have written a
// whole request, which is then cut. Quiesce attaches a socket filter
// that drops every packet to the listening socket (the filter applies to
// the SYNs of new connections and the ACKs that complete pending ones,
// not to the connections already created), so a client that connects
// now retries its SYN and, once the listener is closed, is refused
// before it writes anything. The queue's length is TCP_INFO's
// tcpi_unacked, which Linux reports for a listening socket. Accept must
// keep being called (the server's own accept loop) while Quiesce waits.
//
// A handshake whose final ACK the kernel took in the instant before the
// filter was attached is in the queue and is accepted; one whose ACK
// arrives after is dropped, and that client, which thinks itself
// connected, is reset at close: the window is one round trip.
func (l *Listener) Quiesce(poll time.Duration, stop <-chan struct{}) (int, error) {
	sc, ok := l.Listener.(syscall.Conn)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("quiesce: %w", err)
	}
	// One classic BPF instruction, "ret #0": keep no byte of any packet.
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	prog := unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	}); err != nil {
		return 0, fmt.Errorf("quiesce: %w", err)
	}
	if serr != nil {
		if errors.Is(serr, unix.EOPNOTSUPP) {
			serr = fmt.Errorf("%w (a Multipath TCP socket? listen with ListenTCP)", serr)
		}
		return 0, fmt.Errorf("quiesce: attach the socket filter: %w", serr)
	}
	for {
		var queued int
		if err := rc.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				serr = err
				return
			}
			queued = int(info.Unacked)
		}); err != nil {
			return 0, fmt.Errorf("quiesce: %w", err)
		}
		if serr != nil {
			return 0, fmt.Errorf("quiesce: read the accept queue: %w", serr)
		}
		if queued == 0 {
			return 0, nil
		}
		select {
		case <-stop:
			return queued, nil
		case <-time.After(poll):
		}
	}
}
