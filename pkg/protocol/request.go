package protocol

import (
	"bytes"
	"fmt"

	"github.com/infer-serving/infer/pkg/tensor"
)

// scannedRequest is an infer request's JSON header as the single-pass
// decoder reads it.
type scannedRequest struct {
	ID         string
	Parameters Parameters
	Inputs     []scannedTensor
	Outputs    []wireOutput
}

// scannedTensor is one input. When its name, datatype and shape come
// before its data, as every client writes them, the data is parsed into
// tensor bytes as the scanner passes over it (parsed, with count
// elements); otherwise wire.Data keeps the raw text for decodeTensor.
type scannedTensor struct {
	wire   wireTensor
	parsed bool
	data   []byte
	count  int64
}

// key reports whether a member's key is name; like encoding/json, it
// prefers an exact match and accepts one that differs only in case.
func key(k []byte, name string) bool {
	return string(k) == name || len(k) == len(name) && bytes.EqualFold(k, []byte(name))
}

// scanRequest reads an infer request's JSON header into r, a reset one
// (RequestDecoder.Reset), in one pass with s. Unknown members are checked
// and skipped; a later duplicate wins.
func scanRequest(s *scanner, r *scannedRequest, header []byte) error {
	s.b, s.i, s.kept = header, 0, 0
	err := s.object(func(k []byte) error {
		var err error
		switch {
		case key(k, "id"):
			if n := s.stringLen(); n > MaxRequestIDBytes {
				return fmt.Errorf("id: %d bytes, at most %d", n, MaxRequestIDBytes)
			}
			r.ID, err = s.text("id")
		case key(k, "parameters"):
			r.Parameters, err = s.parameters()
		case key(k, "inputs"):
			r.Inputs, err = list(s, r.Inputs[:0], "inputs", s.tensor)
		case key(k, "outputs"):
			r.Outputs, err = list(s, r.Outputs[:0], "outputs", s.output)
		default:
			_, err = s.value(false, 0)
		}
		return err
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		if errSyntax(err) {
			return badf("request JSON: %v", err)
		}
		return badf("%v", err)
	}
	return nil
}

// list reads an array (or null) of what elem reads, appending to dst:
// at most MaxRequestTensors of them, the rest refused naming field.
func list[T any](s *scanner, dst []T, field string, elem func() (T, error)) ([]T, error) {
	if s.null() {
		return dst, nil
	}
	err := s.array(func() error {
		if len(dst) == MaxRequestTensors {
			return fmt.Errorf("%s: more than %d tensors", field, MaxRequestTensors)
		}
		v, err := elem()
		dst = append(dst, v)
		return err
	})
	return dst, err
}

// tensor reads one input object.
func (s *scanner) tensor() (scannedTensor, error) {
	var t scannedTensor
	w := &t.wire
	if s.null() {
		return t, nil
	}
	err := s.object(func(k []byte) error {
		var err error
		switch {
		case key(k, "name"):
			w.Name, err = s.text("name")
		case key(k, "datatype"), key(k, "shape"):
			// Data parsed already was parsed as the datatype and shape
			// before it: one that comes after it (a later duplicate wins)
			// has it parsed again, from its text, as the tensor finally
			// declares.
			t.parsed = false
			if key(k, "datatype") {
				w.Datatype, err = s.text("datatype")
				break
			}
			if n := len(w.Shape); n > 0 && len(s.mem.ints) >= n {
				// A shape given again replaces the last, at the end of
				// the arena: reuse its room, or a body of shapes given
				// over and over grows the arena by each.
				s.mem.ints = s.mem.ints[:len(s.mem.ints)-n]
			}
			var rank int
			if w.Shape, rank, err = s.int64s("shape", tensor.MaxRank); err == nil && rank > tensor.MaxRank {
				name := "an input"
				if w.Name != "" {
					name = "input " + Clip(w.Name)
				}
				err = fmt.Errorf("%s: invalid shape: rank %d, at most %d dimensions", name, rank, tensor.MaxRank)
			}
		case key(k, "parameters"):
			w.Parameters, err = s.parameters()
		case key(k, "data"):
			start := s.i
			again := t.data[:0] // the room a "data" given before made, reused
			t.parsed, t.data, t.count = false, nil, 0
			if s.null() {
				w.Data = nil
				return nil
			}
			dt, ok := tensor.ParseDataType(w.Datatype)
			n, shapeErr := declaredElements(w.Shape)
			if w.Name == "" || !ok || shapeErr != nil {
				_, err = s.value(false, 0) // decodeTensor names the fault
			} else {
				var dst []byte
				if dt != tensor.Bytes {
					// Room for the declared elements, but never for more
					// than the rest of the text can spell (the shape is
					// only a claim), nor past maxDataRoom made ahead: the
					// rest of the text may be anything. A "data" given
					// again reuses the room the last one made. Past it the
					// data grows as it is read.
					dst = again
					if cap(dst) == 0 {
						dst = s.mem.buffer(min(min(n, maxJSONElements(len(s.b)-s.i))*int64(dt.Size()), maxDataRoom))
					}
				}
				t.data, t.count, err = s.data(dst, dt)
				if err != nil && !errSyntax(err) {
					return fmt.Errorf("input %q: data: %w", w.Name, err)
				}
				t.parsed = err == nil
			}
			w.Data = s.b[start:s.i]
		default:
			_, err = s.value(false, 0)
		}
		return err
	})
	return t, err
}

// output reads one requested output object.
func (s *scanner) output() (wireOutput, error) {
	var o wireOutput
	if s.null() {
		return o, nil
	}
	err := s.object(func(k []byte) error {
		var err error
		switch {
		case key(k, "name"):
			o.Name, err = s.text("name")
		case key(k, "parameters"):
			o.Parameters, err = s.parameters()
		default:
			_, err = s.value(false, 0)
		}
		return err
	})
	return o, err
}
