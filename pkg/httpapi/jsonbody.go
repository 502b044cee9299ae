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

// errEmptyBody is DecodeJSON's error for a body with no JSON value.
var errEmptyBody = fmt.Errorf("%w: an empty body", runner.ErrInvalidInput)

// ReadJSON reads r's body whole, at most limit bytes, and checks it as
// JSON text (protocol.CheckJSON) before anything decodes it. A body over
// the limit is the reader's *http.MaxBytesError; one CheckJSON refuses
// wraps runner.ErrInvalidInput (a 400) and quotes nothing of the body.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, held := r.Context().Value(goneKey{}).(*goneWatch); held && r.ContentLength > 0 && r.ContentLength <= limit {
		// The HTTP port's front read this body whole before bridging it
		// (its length is what arrived): read it in one buffer, with room to
		// see the end. A length a net/http port's client merely announced
		// sizes nothing; that buffer grows as the bytes come.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	if err := protocol.CheckJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: the body %v", runner.ErrInvalidInput, err)
	}
	return raw, nil
}

// DecodeBody reads r's JSON body into v, within limit bytes (ReadJSON,
// then DecodeJSON); errors wrap runner.ErrInvalidInput (a 400).
func DecodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	raw, err := ReadJSON(w, r, limit)
	if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
		return fmt.Errorf("%w: the body is over %d bytes", runner.ErrInvalidInput, tooBig.Limit)
	}
	if err != nil {
		if errors.Is(err, runner.ErrInvalidInput) {
			return err
		}
		return fmt.Errorf("%w: reading the body: %v", runner.ErrInvalidInput, err)
	}
	return DecodeJSON(bytes.NewReader(raw), v)
}

// DecodeJSON reads one JSON value from body into v, a struct: a field v
// does not have is an error naming it, as Triton refuses a generate
// request's key that names no input of the model, and so is anything but
// spaces after the value. Errors wrap runner.ErrInvalidInput (a 400).
func DecodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errEmptyBody
		}
		return fmt.Errorf("%w: request JSON: %v", runner.ErrInvalidInput, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request JSON: more after its value", runner.ErrInvalidInput)
	}
	return nil
}
