// Package h2wire writes the client's side of an HTTP/2 connection frame
// by frame, for tests and scripts/hostile to send gRPC calls no
// well-behaved client would: messages in frames of any size, padded or
// not, left unfinished. It keeps HTTP/2's flow control (RFC 9113,
// section 5.2) when it reads the server's side, so that what a server
// does to such a connection is its own choice, not a protocol error.
package h2wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Conn is a client's side of an HTTP/2 connection.
type Conn struct {
	fr   *http2.Framer
	conn net.Conn // nil for a Writer: nothing is read, no window kept
	hb   bytes.Buffer
	he   *hpack.Encoder
	// The send windows: the connection's and each stream's, and the
	// server's initial stream window.
	window  int
	streams map[uint32]int
	initial int
}

// Writer returns a Conn that writes its frames to w and reads nothing,
// keeping no flow control: for a test that reads the bytes back.
func Writer(w io.Writer) (*Conn, error) {
	if _, err := io.WriteString(w, http2.ClientPreface); err != nil {
		return nil, err
	}
	c := &Conn{fr: http2.NewFramer(w, nil)}
	c.he = hpack.NewEncoder(&c.hb)
	return c, c.fr.WriteSettings()
}

// Dial connects to a server at addr (host:port, loopback in every use
// here) and waits, at most timeout, for its settings.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c, err := Writer(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil) // the server's headers, decoded (AwaitStatus)
	c.conn, c.window, c.initial, c.streams = conn, 65535, 65535, map[uint32]int{}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("waiting for the server's settings: %w", err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if v, ok := s.Value(http2.SettingInitialWindowSize); ok {
				c.initial = int(v)
			}
			return c, c.fr.WriteSettingsAck()
		}
	}
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Open starts a call of method (a gRPC path, "/package.Service/Method")
// on stream id, odd and larger than any opened before.
func (c *Conn) Open(id uint32, method string) error {
	c.hb.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method},
		{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := c.he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	if c.streams != nil {
		c.streams[id] = c.initial
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndHeaders: true})
}

// Send sends p on stream id in DATA frames of at most frame bytes of
// data, each padded with pad bytes when pad > 0, the last ending the
// stream when end is set. On a dialed Conn it waits, at most timeout
// each time, for the server to open the windows it needs.
func (c *Conn) Send(id uint32, p []byte, frame, pad int, end bool, timeout time.Duration) error {
	for first := true; first || len(p) > 0; first = false {
		n := min(frame, len(p))
		cost := n
		if pad > 0 {
			cost += 1 + pad
		}
		if err := c.await(id, cost, timeout); err != nil {
			return err
		}
		last := n == len(p)
		var err error
		if pad > 0 {
			err = c.fr.WriteDataPadded(id, end && last, p[:n], make([]byte, pad))
		} else {
			err = c.fr.WriteData(id, end && last, p[:n])
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Reset cancels stream id (RST_STREAM with CANCEL).
func (c *Conn) Reset(id uint32) error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) }

// ErrReset is await's and WaitClosed's error when the server resets a
// stream or the connection with an error code.
var ErrReset = errors.New("reset by the server")

// await reads the server's frames until stream id and the connection
// both have cost bytes of window.
func (c *Conn) await(id uint32, cost int, timeout time.Duration) error {
	if c.conn == nil {
		return nil
	}
	for c.window < cost || c.streams[id] < cost {
		if err := c.read(timeout); err != nil {
			return err
		}
	}
	c.window -= cost
	c.streams[id] -= cost
	return nil
}

// read reads one frame of the server's, waiting at most timeout.
func (c *Conn) read(timeout time.Duration) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	return c.handle(f)
}

// handle keeps the windows and settings a frame of the server's changes,
// answers its pings, and returns ErrReset for a reset.
func (c *Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.window += int(f.Increment)
		} else {
			c.streams[f.StreamID] += int(f.Increment)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			break
		}
		if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
			for id := range c.streams { // every stream's window moves by the change
				c.streams[id] += int(v) - c.initial
			}
			c.initial = int(v)
		}
		return c.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.fr.WritePing(true, f.Data)
		}
	case *http2.RSTStreamFrame:
		return fmt.Errorf("stream %d: %w with %v", f.StreamID, ErrReset, f.ErrCode)
	case *http2.GoAwayFrame:
		if f.ErrCode != http2.ErrCodeNo {
			return fmt.Errorf("connection: %w with %v", ErrReset, f.ErrCode)
		}
	}
	return nil
}

// AwaitStatus reads the server's frames until the headers that end
// stream id (its trailers, or a trailers-only answer) and returns their
// grpc-status and grpc-message, waiting at most timeout for each frame.
func (c *Conn) AwaitStatus(id uint32, timeout time.Duration) (code, message string, err error) {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
		f, err := c.fr.ReadFrame()
		if err != nil {
			return "", "", err
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == id && h.StreamEnded() {
			return fieldValue(h, "grpc-status"), fieldValue(h, "grpc-message"), nil
		}
		if err := c.handle(f); err != nil {
			return "", "", err
		}
	}
}

// WaitClosed reads the server's frames until it closes the connection
// (nil), resets a stream or goes away with an error (ErrReset), or
// timeout passes with nothing read (a timeout error).
func (c *Conn) WaitClosed(timeout time.Duration) error {
	for {
		err := c.read(timeout)
		var ne net.Error
		switch {
		case err == nil:
		case Closed(err):
			return nil
		case errors.Is(err, ErrReset), errors.As(err, &ne) && ne.Timeout():
			return err
		default:
			return err
		}
	}
}

// Closed reports whether err, from Open, Send or Reset, means the server
// closed the connection (EOF, a reset, a broken pipe): what a server does
// to a connection it will no longer read.
func Closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// Message is a gRPC Length-Prefixed-Message (gRPC over HTTP/2, the
// protocol's own document) declaring n bytes and carrying the first have
// of them, zeros.
func Message(n, have int) []byte {
	m := make([]byte, 5+have)
	binary.BigEndian.PutUint32(m[1:], uint32(n))
	return m
}

// fieldValue is the value of the header field name in h, "" when absent.
func fieldValue(h *http2.MetaHeadersFrame, name string) string {
	for _, f := range h.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
