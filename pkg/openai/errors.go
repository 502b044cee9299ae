package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// decode reads a body of at most limit bytes into v, its shape checked
// first (httpapi.ReadJSON), refusing fields v does not have. A value of
// the wrong JSON type names the field and the types, in JSON's words
// rather than Go's; more after the object is refused too.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	raw, err := httpapi.ReadJSON(w, r, limit)
	if err != nil {
		return decodeErr(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeErr(err)
	}
	if _, err := dec.Token(); errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("%w: the body: more after its JSON object", runner.ErrInvalidInput)
}

// decodeErr words a decoding error; nil stays nil.
func decodeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: the body is empty: want a JSON object", runner.ErrInvalidInput)
	case errors.Is(err, runner.ErrInvalidInput):
		return err
	}
	if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
		return fmt.Errorf("%w: the body exceeds %d bytes", runner.ErrTooLarge, tooBig.Limit)
	}
	if te := new(json.UnmarshalTypeError); errors.As(err, &te) && te.Field != "" {
		return fmt.Errorf("%w: %s: want %s, got %s", runner.ErrInvalidInput, te.Field, jsonKind(te.Type), te.Value)
	}
	return fmt.Errorf("%w: request JSON: %v", runner.ErrInvalidInput, err)
}

// jsonKind names what a Go type takes in JSON's words.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// openAIError answers in the OpenAI API's error shape; a 400 names the
// field at fault in its message and, when it can tell, in param.
func openAIError(w http.ResponseWriter, err error) {
	status := core.Status(err)
	kind := "server_error"
	switch {
	case status == http.StatusNotFound:
		kind = "not_found_error"
	case status < 500:
		kind = "invalid_request_error"
	}
	p := param(err)
	if s, ok := p.(string); ok && len(s) > 64 {
		p = protocol.Clip(s) // a field the client made up
	}
	body := map[string]any{"message": protocol.ClipMessage(err.Error()), "type": kind, "code": status, "param": p}
	writeJSON(w, status, map[string]any{"error": body})
}

// param picks the field an invalid-input error names: the word after
// "invalid input: ", up to a space, colon or bracket, or the field the
// JSON decoder found no place for.
func param(err error) any {
	_, rest, ok := strings.Cut(err.Error(), runner.ErrInvalidInput.Error()+": ")
	if !ok {
		return nil
	}
	if _, field, ok := strings.Cut(rest, `json: unknown field "`); ok {
		name, _, _ := strings.Cut(field, `"`)
		return name
	}
	end := strings.IndexAny(rest, " :")
	if end <= 0 {
		return nil
	}
	name := rest[:end]
	base, _, _ := strings.Cut(name, "[") // messages[0].content: messages
	base, _, _ = strings.Cut(base, ".")
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_[].0123456789") != "" || !fields[base] {
		return nil
	}
	return name
}

// fields are the names of the requests' fields: what a message may name
// as the param at fault.
var fields = func() map[string]bool {
	out := map[string]bool{}
	for _, t := range []reflect.Type{reflect.TypeFor[request](), reflect.TypeFor[embeddingsRequest]()} {
		for f := range t.Fields() {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				out[name] = true
			}
		}
	}
	return out
}()
