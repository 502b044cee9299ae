package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
)

// bodyChunk is the most readBody allocates before a body's bytes arrive,
// in bytes: a Content-Length is a claim, and the buffer grows only as the
// bytes it announces come in.
const bodyChunk = 64 << 10

// errBodyTooLarge makes the 413 error of a body over limit bytes, which
// announced (or was found to hold) at least n bytes.
func errBodyTooLarge(n, limit int64) error {
	return fmt.Errorf("request body of %d bytes or more is over the limit of %d bytes (max_body_bytes): %w", n, limit, &http.MaxBytesError{Limit: limit})
}

// readBody reads a request body of at most limit bytes from body, whose
// announced length is want (-1: unknown, as chunked), appending it to buf
// (a pooled buffer, or nil). One that announces more is refused before it
// is read; otherwise the buffer grows by no more than bodyChunk and then
// doubles as the bytes arrive, up to the length announced, so a client
// that announces a large body and sends little costs the server little.
// It never reads past the announced length, nor more than limit+1 bytes.
//
// The buffer's capacity is charged to budget as it grows, the total in
// *held, which the caller gives back once it lets the buffer go (also
// after an error); a growth the budget refuses fails the read.
func readBody(body io.Reader, want, limit int64, buf []byte, budget *bodyBudget, held *int64) ([]byte, error) {
	if want > limit {
		return nil, errBodyTooLarge(want, limit)
	}
	charge := func() error {
		n := int64(cap(buf)) - *held
		if err := budget.take(n); err != nil {
			return err
		}
		*held += max(n, 0)
		return nil
	}
	end := limit + 1 // reading one byte past the limit tells a body over it
	if want >= 0 {
		end = want
	}
	size := min(int64(bodyChunk), end)
	if int64(cap(buf)) < size {
		buf = slices.Grow(buf[:0], int(max(size, 512)))
	}
	buf = buf[:0]
	if err := charge(); err != nil {
		return nil, err
	}
	for int64(len(buf)) < end {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), end-int64(len(buf)))))
			if err := charge(); err != nil {
				return nil, err
			}
		}
		n, err := body.Read(buf[len(buf):min(int64(cap(buf)), end)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			if want >= 0 && int64(len(buf)) < want {
				return nil, fmt.Errorf("%w: reading the body after %d bytes: %v", protocol.ErrBadRequest, len(buf), io.ErrUnexpectedEOF)
			}
			return buf, nil
		case err != nil:
			if errors.Is(err, core.ErrBodyTimeout) {
				return nil, fmt.Errorf("reading the body after %d bytes: %w", len(buf), err)
			}
			return nil, fmt.Errorf("%w: reading the body after %d bytes: %v", protocol.ErrBadRequest, len(buf), err)
		}
	}
	if int64(len(buf)) > limit {
		return nil, errBodyTooLarge(int64(len(buf)), limit)
	}
	return buf, nil
}

// timedBody names the read timeout when the connection's read deadline
// cut a body short.
type timedBody struct {
	io.Reader
	timeout time.Duration
}

func (b timedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: the body took over %v (read_timeout)", core.ErrBodyTimeout, b.timeout)
	}
	return n, err
}
