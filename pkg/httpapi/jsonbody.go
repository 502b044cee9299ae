package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Bounds on a JSON body's shape, checked before it is decoded (a scan
// that allocates nothing): no request of these endpoints nests past a few
// levels, or names a field in more than a few dozen bytes. Past them a
// decoder would recurse once a level, and encoding/json quote an unknown
// key whole in its error: a body of one 60 MiB key took ten times its
// size to refuse.
const (
	MaxJSONDepth = 64
	MaxJSONKey   = 1 << 10
)

// errEmptyBody is DecodeJSON's error for a body with no JSON value.
var errEmptyBody = fmt.Errorf("%w: an empty body", runner.ErrInvalidInput)

// ReadJSON reads r's body whole, at most limit bytes, and checks its shape
// (MaxJSONDepth, MaxJSONKey). A body over the limit is the reader's
// *http.MaxBytesError; a shape past the bounds wraps
// runner.ErrInvalidInput (a 400) and quotes nothing of the body.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead) // read whole in one buffer, with room to see the end
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	switch depth, key := protocol.JSONShape(raw); {
	case depth > MaxJSONDepth:
		return nil, fmt.Errorf("%w: the body's JSON nests %d deep, at most %d", runner.ErrInvalidInput, depth, MaxJSONDepth)
	case key > MaxJSONKey:
		return nil, fmt.Errorf("%w: the body's JSON has a key of %d bytes, at most %d", runner.ErrInvalidInput, key, MaxJSONKey)
	}
	return raw, nil
}

// DecodeBody reads r's JSON body into v, within limit bytes (ReadJSON);
// errors wrap runner.ErrInvalidInput (a 400).
func DecodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	raw, err := ReadJSON(w, r, limit)
	if err != nil {
		if errors.Is(err, runner.ErrInvalidInput) {
			return err
		}
		return fmt.Errorf("%w: request JSON: %v", runner.ErrInvalidInput, err)
	}
	return DecodeJSON(bytes.NewReader(raw), v)
}

// DecodeJSON reads one JSON value from body into v, a struct: a field v
// does not have is an error naming it, as Triton refuses a generate
// request's key that names no input of the model. Errors wrap
// runner.ErrInvalidInput (a 400).
func DecodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errEmptyBody
		}
		return fmt.Errorf("%w: request JSON: %v", runner.ErrInvalidInput, err)
	}
	return nil
}
