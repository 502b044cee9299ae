package modelhost

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvHost is set to "1" in a host's environment; a process started with
// it serves as a host (see IsHost) and never starts hosts of its own.
const EnvHost = "INFER_MODEL_HOST"

// HostArg is the hidden argument the infer binary is started with as a
// host.
const HostArg = "model-host"

// The host's inherited descriptors: its end of the socket, the region,
// and, where the parent passed one, the model file.
const (
	hostConnFD   = 3
	hostRegionFD = 4
	hostModelFD  = 5
)

// IsHost reports whether this process was started as a model host.
func IsHost() bool { return os.Getenv(EnvHost) == "1" }

// Conn is one end of a host's socket: a SOCK_SEQPACKET pair, so message
// boundaries are kept. It is non-blocking and waits through the runtime's
// network poller: a worker waiting for its host's answer parks, and its
// thread and P go on serving. A read that blocked in the kernel instead
// held its P until the runtime's monitor took it back, which started
// another thread, and kept the monitor waking every 20 µs. With the host
// on the same core, each of those is a context switch. On a 2-core VM,
// with the server and its host on one core, binary mlp at 64 connections
// made 1.0 context switches a request blocking, and 0.65 through the poller.
type Conn struct {
	f   *os.File
	buf []byte
}

// newConn returns the Conn over the socket fd, which it takes over.
func newConn(fd int, name string) (Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return Conn{}, fmt.Errorf("model host socket: %w", err)
	}
	return Conn{f: os.NewFile(uintptr(fd), name)}, nil
}

// Send writes one message. One longer than the receiver's buffer
// (smallMessage) goes after a short packet announcing its length, for
// which the receiver makes room.
func (c *Conn) Send(msg []byte) error {
	if len(msg) > maxMessage {
		return fmt.Errorf("message of %d bytes, at most %d", len(msg), maxMessage)
	}
	if len(msg) > smallMessage {
		if err := c.write(binary.LittleEndian.AppendUint64([]byte{opLarge}, uint64(len(msg)))); err != nil {
			return err
		}
	}
	return c.write(msg)
}

// write writes one packet.
func (c *Conn) write(msg []byte) error {
	if _, err := c.f.Write(msg); err != nil {
		return fmt.Errorf("send to model host: %w", err)
	}
	return nil
}

// Recv reads one message, waiting at most timeout (0: no bound). It
// returns io.EOF when the other end is gone. The message is valid until
// the next Recv.
func (c *Conn) Recv(timeout time.Duration) ([]byte, error) {
	if c.buf == nil {
		c.buf = make([]byte, smallMessage)
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("receive from model host: %w", err)
	}
	msg, err := c.read(c.buf)
	if err != nil || len(msg) != largeHeader || msg[0] != opLarge {
		return msg, err
	}
	// A long message follows, at once: read it into a buffer of its own,
	// so that the connection's stays small.
	n := binary.LittleEndian.Uint64(msg[1:])
	if n > maxMessage {
		return nil, fmt.Errorf("receive from model host: a message of %d bytes announced, at most %d", n, maxMessage)
	}
	return c.read(make([]byte, n))
}

// read reads one packet into buf.
func (c *Conn) read(buf []byte) ([]byte, error) {
	n, err := c.f.Read(buf)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errTimeout
	case err == io.EOF, errors.Is(err, unix.ECONNRESET):
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("receive from model host: %w", err)
	}
	return buf[:n], nil
}

// Close closes this end; a Recv waiting on it returns at once.
func (c *Conn) Close() error { return c.f.Close() }

// errTimeout is Recv's error when its timeout passes.
var errTimeout = errors.New("timed out")

// IsTimeout reports whether err is Recv's timeout.
func IsTimeout(err error) bool { return errors.Is(err, errTimeout) }

// HostModelFile returns the model file a host's parent passed it, read
// only, or nil when it passed none (the model's bytes are then in the
// region).
func HostModelFile() *os.File { return os.NewFile(hostModelFD, "model") }

// HostEnds returns a host's own connection and region, inherited from
// the parent that started it.
func HostEnds() (*Conn, *Region, error) {
	if !IsHost() {
		return nil, nil, errors.New("not started as a model host")
	}
	region, err := OpenRegion(os.NewFile(hostRegionFD, "region"))
	if err != nil {
		return nil, nil, err
	}
	conn, err := newConn(hostConnFD, "model-host-socket")
	if err != nil {
		return nil, nil, err
	}
	return &conn, region, nil
}

// Process is a running host, seen from the parent.
type Process struct {
	Conn
	Region *Region
	cmd    *exec.Cmd
	done   chan struct{} // closed when the host has exited
	stderr stderrLines
	exit   error // why it exited; set before done is closed
	// stopping is set by Stop before it kills the host: an exit that
	// follows is no news.
	stopping atomic.Bool
}

// Spawn says how Start starts a host.
type Spawn struct {
	// Model, when not nil, is the model file, open for reading, which the
	// host reads itself: its bytes never pass through this process. Start
	// does not close it. Nil: the bytes are at the start of the region.
	Model *os.File
	// Env is added to this process's environment for the host.
	Env []string
	// Stderr receives the host's log lines.
	Stderr io.Writer
	// Exited, when set, is called as soon as the host exits unless Stop
	// ended it, with the host's process ID and the cause: a host that
	// dies while idle is known at once.
	Exited func(pid int, cause string)
	// Reaped, when set, is called once the host has exited and been
	// waited for, however it ended.
	Reaped func()
}

// Start starts a host: this executable with HostArg, given its end of a
// new socket, the region and, where s has one, the model file. Its log
// lines go to s.Stderr, and its crash report's headline is kept for the
// cause of its death. The host is killed if this process's thread that
// started it dies (PR_SET_PDEATHSIG) and ends by itself when its socket
// closes. It starts with the nice value of the thread that calls Start.
func Start(region *Region, s Spawn) (*Process, error) {
	if IsHost() {
		return nil, errors.New("a model host cannot start model hosts")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	hostEnd := os.NewFile(uintptr(fds[1]), "model-host-socket")
	defer hostEnd.Close() // the host holds its own copy once started
	conn, err := newConn(fds[0], "model-host-socket")
	if err != nil {
		return nil, err
	}
	p := &Process{Conn: conn, Region: region, done: make(chan struct{})}
	p.stderr.w = s.Stderr
	cmd := exec.Command(exe, HostArg)
	cmd.Env = append(append(os.Environ(), s.Env...), EnvHost+"=1")
	cmd.ExtraFiles = []*os.File{hostEnd, region.File()} // fds 3 and 4
	if s.Model != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.Model) // fd 5
	}
	cmd.Stderr = &p.stderr
	// Its own process group: a terminal's Ctrl-C reaches the server, which
	// drains, and not its hosts, which must answer while it does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.Conn.Close()
		return nil, fmt.Errorf("start model host: %w", err)
	}
	p.cmd = cmd
	go func() {
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exited")
		}
		p.exit = err
		close(p.done)
		if s.Exited != nil && !p.stopping.Load() {
			s.Exited(cmd.Process.Pid, p.Cause(0))
		}
		if s.Reaped != nil {
			s.Reaped()
		}
	}()
	return p, nil
}

// Pid returns the host's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the host has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the host has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill ends the host at once.
func (p *Process) Kill() { _ = p.cmd.Process.Kill() }

// Abort ends the host at once, as its owner's decision: its exit is not
// reported as news. Any goroutine may call it.
func (p *Process) Abort() {
	p.stopping.Store(true)
	p.Kill()
}

// Stop kills the host, waits for it to exit and closes the socket; the
// region is left to its owner.
func (p *Process) Stop() {
	p.stopping.Store(true)
	p.Kill()
	<-p.done
	_ = p.Conn.Close()
}

// Cause waits up to wait for the host to exit and describes why it did:
// the signal that ended it ("SIGKILL"), the fatal signal or error the
// Go runtime reported before exiting ("SIGFPE: floating-point exception",
// "fatal error: runtime: out of memory"), or its exit status with the
// last line it logged. A host still running after wait is killed, and the
// cause says so.
func (p *Process) Cause(wait time.Duration) string {
	if !p.Exited() {
		select {
		case <-p.done:
		case <-time.After(wait):
			p.stopping.Store(true) // not killed from outside
			p.Kill()
			<-p.done
			return "stopped answering and was killed"
		}
	}
	var ee *exec.ExitError
	if errors.As(p.exit, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return signalName(ws.Signal())
		}
	}
	headline, last := p.stderr.summary()
	if headline != "" {
		return headline
	}
	if last != "" {
		return p.exit.Error() + ": " + last
	}
	return p.exit.Error()
}

// KilledFromOutside reports whether the host, now exited, was ended by
// SIGKILL that its owner did not send (Kill, Abort, Stop): an operator's
// kill -9 or the kernel's OOM killer, nothing the host's model did by
// itself.
func (p *Process) KilledFromOutside() bool {
	if !p.Exited() || p.stopping.Load() {
		return false
	}
	var ee *exec.ExitError
	if errors.As(p.exit, &ee) {
		ws, ok := ee.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	return false
}

// signalName returns a signal's conventional name, such as SIGKILL.
func signalName(s syscall.Signal) string {
	if name := unix.SignalName(s); name != "" {
		return name
	}
	return s.String()
}

// stderrLines reads a host's standard error line by line. The host's own
// log lines (log/slog's text format, "time=...") are passed on to w; the
// Go runtime's crash report is not, being mostly registers and stacks,
// but its headline is kept: the first line that names a fatal signal,
// error or panic. Memory is bounded whatever the host writes.
type stderrLines struct {
	w        io.Writer
	mu       sync.Mutex
	partial  []byte
	headline string
	last     string // the last log line
}

const maxLine = 4096

func (t *stderrLines) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			room := maxLine - len(t.partial)
			t.partial = append(t.partial, b[:min(len(b), max(room, 0))]...)
			break
		}
		t.partial = append(t.partial, b[:min(i, max(maxLine-len(t.partial), 0))]...)
		t.line(string(t.partial))
		t.partial = t.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

func (t *stderrLines) line(l string) {
	l = strings.TrimSpace(l)
	switch {
	case l == "":
	case strings.HasPrefix(l, "time="):
		t.last = trim(l)
		if t.w != nil {
			_, _ = io.WriteString(t.w, l+"\n")
		}
	case t.headline == "" && isHeadline(l):
		t.headline = trim(l)
	}
}

// isHeadline reports whether l opens a Go runtime crash report:
// "SIGFPE: floating-point exception", "fatal error: ...", "panic: ...".
func isHeadline(l string) bool {
	if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") {
		return true
	}
	name, _, ok := strings.Cut(l, ":")
	return ok && strings.HasPrefix(name, "SIG") && len(name) <= 10 && strings.ToUpper(name) == name
}

func (t *stderrLines) summary() (headline, last string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.headline, t.last
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
