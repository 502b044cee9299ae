package grpcapi

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/protowalk"
	"github.com/infer-serving/infer/pkg/tensor"
)

// inferMessage is a ModelInferRequest as it arrived: the message's bytes,
// held whole, and where its fields lie in them. The server's codec scans
// it (scan) in place of protobuf's unmarshalling, which makes a slice
// header, a struct or a map entry for every entry of a repeated field
// before anything can count them: measured on this server, a 60 MB
// message of 30M empty raw_input_contents peaked at 7.25 GB, and four
// concurrent messages of empty bytes_contents at 9 GB. Here every count
// is bounded before anything is made for it; the tensors are decoded
// straight from the wire into their bytes once the core has admitted the
// call (inputs), raw contents aliasing the message with no copy; and a
// malformed message is the client's error (INVALID_ARGUMENT), as a
// malformed JSON body is over HTTP, not grpc-go's INTERNAL.
//
// Field numbers are grpc_service.proto's; the reading follows protobuf's
// rules for proto3: a field met twice is the last one (a message field
// merges), a known field of the wrong wire type and an unknown field are
// skipped, strings must be UTF-8, repeated scalars may come packed or
// not.
type inferMessage struct {
	buf                []byte
	model, version, id string
	// The fields' bytes, in order: parameters' map entries, inputs and
	// outputs as messages, raw_input_contents aliasing buf.
	params, inputs, outputs, raw [][]byte
	// err is the scan's: the message is malformed or past a bound. It is
	// kept for the handler to answer, as the codec's own errors are
	// INTERNAL.
	err error
}

// GetModelName and GetModelVersion are the names the names' check
// (checkNames) bounds.
func (m *inferMessage) GetModelName() string    { return m.model }
func (m *inferMessage) GetModelVersion() string { return m.version }

// maxParameters bounds the entries of one parameters map: Triton's
// clients send a handful.
const maxParameters = 256

// maxRepeats bounds how many times a message field that is not repeated
// may be met in one message (each is kept, to merge).
const maxRepeats = 256

// malformed is a framing fault, protowire's.
func malformed(n int) error {
	return badRequest("%v", &protowalk.Error{Err: protowire.ParseError(n)})
}

// scan reads b, a ModelInferRequest's wire bytes, into m. Nothing it
// makes grows with the message but the names and the field lists, each
// bounded.
func (m *inferMessage) scan(b []byte) error {
	m.buf = b
	err := protowalk.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) (err error) {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			m.model, err = wireString(v, "model_name")
		case 2:
			m.version, err = wireString(v, "model_version")
		case 3:
			if len(v) > protocol.MaxRequestIDBytes {
				return badRequest("id: %d bytes, at most %d", len(v), protocol.MaxRequestIDBytes)
			}
			m.id, err = wireString(v, "id")
		case 4:
			m.params, err = appendBounded(m.params, v, maxParameters, "parameters")
		case 5:
			m.inputs, err = appendBounded(m.inputs, v, protocol.MaxRequestTensors, "inputs")
		case 6:
			m.outputs, err = appendBounded(m.outputs, v, protocol.MaxRequestTensors, "outputs")
		case 7:
			m.raw, err = appendBounded(m.raw, v, protocol.MaxRequestTensors, "raw_input_contents")
		}
		return err
	})
	if pe := (*protowalk.Error)(nil); errors.As(err, &pe) {
		return badRequest("ModelInferRequest: %v", pe)
	}
	return err
}

func appendBounded(list [][]byte, v []byte, limit int, field string) ([][]byte, error) {
	if len(list) == limit {
		return list, badRequest("more than %d %s", limit, field)
	}
	return append(list, v), nil
}

// wireString is a string field's value: protobuf's strings are UTF-8.
func wireString(v []byte, field string) (string, error) {
	if !utf8.Valid(v) {
		return "", badRequest("%s is not valid UTF-8", field)
	}
	return string(v), nil
}

// parameter is an InferParameter as the server reads it: its name, and
// its value's bits when it is an integer (int64_param, or uint64_param
// when unsigned).
type parameter struct {
	name            string
	x               uint64
	isInt, unsigned bool
}

// maxIntParam is the largest integer a parameter takes, over HTTP and
// gRPC alike: JSON's numbers hold every integer up to 2^53 exactly, and
// a timeout of 2^53 microseconds still fits a time.Duration.
const maxIntParam = 1 << 53

// count is p's value as a non-negative integer up to maxIntParam, or a
// bad request naming it (what names the parameter, unit what it counts:
// " (microseconds)").
func (p parameter) count(what, unit string) (int64, error) {
	switch {
	case !p.isInt || !p.unsigned && int64(p.x) < 0:
		return 0, badRequest("%s: want a non-negative integer%s", what, unit)
	case p.x > maxIntParam:
		return 0, badRequest("%s: %d is over 2^53, the largest integer this parameter takes", what, p.x)
	}
	return int64(p.x), nil
}

// parameters reads a parameters map's entries: a name given twice is its
// last entry, as protobuf's maps are.
func parameters(entries [][]byte) ([]parameter, error) {
	var out []parameter
	for _, e := range entries {
		p, err := parameterOf(e)
		if err != nil {
			return nil, err
		}
		replaced := false
		for i := range out {
			if out[i].name == p.name {
				out[i], replaced = p, true
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	return out, nil
}

// parameterOf reads one map entry: key (1), and value (2), an
// InferParameter whose oneof is bool_param (1), int64_param (2),
// string_param (3), double_param (4) or uint64_param (5).
func parameterOf(e []byte) (p parameter, err error) {
	err = fields(e, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) (err error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			p.name, err = wireString(v, "a name")
		case num == 2 && typ == protowire.BytesType:
			err = fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case typ == protowire.VarintType && (num == 1 || num == 2 || num == 5):
					p.x, p.isInt, p.unsigned = x, num != 1, num == 5
				case num == 3 && typ == protowire.BytesType:
					p.isInt = false
					_, err := wireString(v, "string_param")
					return err
				case num == 4 && typ == protowire.Fixed64Type:
					p.isInt = false
				}
				return nil
			})
		}
		return err
	})
	if err != nil && p.name != "" {
		err = at(protocol.Clip(p.name), err)
	}
	return p, err
}

// fields is protowalk.Fields, its framing faults bad requests.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	err := protowalk.Fields(b, f)
	if pe := (*protowalk.Error)(nil); errors.As(err, &pe) {
		return badRequest("%v", pe)
	}
	return err
}

// requestedOutput reads an InferRequestedOutputTensor: name (1) and
// parameters (2). Its errors do not say which output: the caller does.
func requestedOutput(b []byte) (name string, params []parameter, err error) {
	var entries [][]byte
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) (err error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			name, err = wireString(v, "name")
		case num == 2 && typ == protowire.BytesType:
			entries, err = appendBounded(entries, v, maxParameters, "parameters")
		}
		return err
	})
	if err != nil {
		return "", nil, err
	}
	params, err = parameters(entries)
	return name, params, at("parameters", err)
}

// wireInput is an InferInputTensor read but for its contents: name (1),
// datatype (2), shape (3), parameters (4, checked, unused) and the bytes
// of each contents (5) it carries, a message met twice merging.
type wireInput struct {
	name, datatype string
	shape          []int64 // its first tensor.MaxRank dimensions
	rank           int
	contents       [][]byte
}

// inputOf reads an InferInputTensor. A shape of more dimensions than a
// tensor may have is counted, not kept, and refused by the input's name.
// Its errors do not say which input: the caller does.
func inputOf(b []byte) (in wireInput, err error) {
	params := 0
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) (err error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			in.name, err = wireString(v, "name")
		case num == 2 && typ == protowire.BytesType:
			in.datatype, err = wireString(v, "datatype")
		case num == 3 && typ == protowire.VarintType:
			in.appendDim(x)
		case num == 3 && typ == protowire.BytesType:
			for len(v) > 0 {
				x, n := protowire.ConsumeVarint(v)
				if n < 0 {
					return at("shape", malformed(n))
				}
				in.appendDim(x)
				v = v[n:]
			}
		case num == 4 && typ == protowire.BytesType:
			if params++; params > maxParameters {
				return badRequest("more than %d parameters", maxParameters)
			}
			_, err = parameterOf(v)
			err = at("parameters", err)
		case num == 5 && typ == protowire.BytesType:
			if len(in.contents) == maxRepeats {
				return badRequest("contents met more than %d times", maxRepeats)
			}
			if in.contents == nil {
				in.contents = make([][]byte, 0, 1)
			}
			in.contents = append(in.contents, v)
		}
		return err
	})
	if err == nil && in.rank > tensor.MaxRank {
		err = badRequest("input %s: invalid shape: rank %d, at most %d dimensions", protocol.Clip(in.name), in.rank, tensor.MaxRank)
	}
	return in, err
}

func (in *wireInput) appendDim(x uint64) {
	if in.rank++; in.rank <= tensor.MaxRank {
		in.shape = append(in.shape, int64(x))
	}
}
