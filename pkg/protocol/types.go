// Package protocol encodes and decodes the Open Inference Protocol (KServe
// v2) over HTTP: JSON tensors, flat or nested, and the binary tensor data
// extension in both directions. Server and load generator share it; it
// knows nothing of how requests are executed.
//
// References: kserve/open-inference-protocol specification/protocol, and
// Triton's protocol/extension_binary_data.md.
package protocol

import (
	"fmt"
	"math"

	"github.com/infer-serving/infer/pkg/tensor"
)

// HeaderContentLength is the HTTP header that carries the length of the
// JSON part of a body holding binary tensor data.
const HeaderContentLength = "Inference-Header-Content-Length"

// Parameter names of the binary tensor data extension and of Triton's
// request parameters.
const (
	ParamBinaryDataSize   = "binary_data_size"
	ParamBinaryData       = "binary_data"
	ParamBinaryDataOutput = "binary_data_output"
	ParamTimeout          = "timeout"  // microseconds
	ParamPriority         = "priority" // 1 is the highest
	// ParamClassification, on a requested output, asks for its top
	// classes instead of its tensor (Triton's classification extension;
	// Triton's clients send their class_count argument under this name,
	// and ParamClassCount is taken as the same).
	ParamClassification = "classification"
	ParamClassCount     = "class_count"
)

// Parameter names of a model's metadata for outputs that are not tensors
// in the model (ONNX maps and sequences), the names MLServer and KServe
// give such annotations. On an output: ParamContentType says what its
// BYTES elements hold ("json": one JSON object each), ParamONNXType its
// type in the model. On the model: ParamUnservedOutput followed by an
// output's name says why that output is not served.
const (
	ParamContentType    = "content_type"
	ParamONNXType       = "onnx_type"
	ParamUnservedOutput = "unserved_output."
)

// ExtensionBinaryTensorData is the binary tensor extension's name in a
// server's metadata.
const ExtensionBinaryTensorData = "binary_tensor_data"

// ExtensionClassification is the classification extension's name in a
// server's metadata.
const ExtensionClassification = "classification"

// Extensions are the protocol extensions this package implements.
var Extensions = []string{ExtensionBinaryTensorData, ExtensionClassification}

// ServerMetadata is the body of GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// TensorMetadata describes one model input or output; -1 marks a
// dynamic dimension.
type TensorMetadata struct {
	Name       string     `json:"name"`
	Datatype   string     `json:"datatype"`
	Shape      []int64    `json:"shape"`
	Parameters Parameters `json:"parameters,omitempty"`
}

// ModelMetadata is the body of GET /v2/models/{model}[/versions/{version}].
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
	// Parameters name the outputs that are not served
	// (ParamUnservedOutput).
	Parameters Parameters `json:"parameters,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Parameters are a request's, input's or output's parameters: JSON
// booleans, numbers and strings by name.
type Parameters map[string]any

// jsonKind names a decoded JSON value's kind and value, for errors: a
// string "32" reads as `the string "32"`.
func jsonKind(v any) string {
	switch v := v.(type) {
	case string:
		return "the string " + Clip(v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v", v)
}

// Int returns parameter name as a non-negative integer; ok is false when
// it is absent.
func (p Parameters) Int(name string) (v int64, ok bool, err error) {
	raw, ok := p[name]
	if !ok {
		return 0, false, nil
	}
	f, isNum := raw.(float64)
	if !isNum {
		return 0, true, fmt.Errorf("parameter %q: %s, want a JSON number (a non-negative integer, such as 32, unquoted)", name, jsonKind(raw))
	}
	if f > 1<<53 {
		// A float64 holds every integer up to 2^53 exactly; past it the
		// number read may not be the one sent.
		return 0, true, fmt.Errorf("parameter %q: %v is over 2^53, the largest integer this parameter takes", name, raw)
	}
	if f < 0 || f != math.Trunc(f) {
		return 0, true, fmt.Errorf("parameter %q: %v is not a non-negative integer", name, raw)
	}
	return int64(f), true, nil
}

// Classes returns the classification count an output's parameters ask
// for, under ParamClassification or ParamClassCount (0: none); the two
// given with different values are an error.
func (p Parameters) Classes() (int64, error) {
	n, _, err := p.Int(ParamClassification)
	if err != nil {
		return 0, err
	}
	alias, given, err := p.Int(ParamClassCount)
	if err != nil {
		return 0, err
	}
	if given && n != 0 && alias != n {
		return 0, fmt.Errorf("parameters %q (%d) and %q (%d) disagree", ParamClassification, n, ParamClassCount, alias)
	}
	return max(n, alias), nil
}

// Bool returns parameter name as a boolean (false when absent).
func (p Parameters) Bool(name string) (bool, error) {
	raw, ok := p[name]
	if !ok {
		return false, nil
	}
	b, isBool := raw.(bool)
	if !isBool {
		return false, fmt.Errorf("parameter %q: %s is not a boolean", name, jsonKind(raw))
	}
	return b, nil
}

// RequestedOutput is one entry of a request's outputs list.
type RequestedOutput struct {
	Name   string
	Binary bool // return as binary data
	// Classes is the number of top classes asked for in place of the
	// tensor (the classification parameter); 0 asks for the tensor.
	Classes int64
}

// InferRequest is a decoded infer request.
type InferRequest struct {
	ID     string
	Inputs []tensor.Tensor
	// Outputs are the outputs asked for; empty means all, in JSON unless
	// BinaryOutput is set.
	Outputs      []RequestedOutput
	BinaryOutput bool
	// Parameters holds the request-level parameters, timeout and priority
	// included.
	Parameters Parameters
}

// InferResponse is an infer response.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Outputs      []tensor.Tensor
	// Binary[i] sends Outputs[i] as binary data; nil sends all as JSON.
	Binary     []bool
	Parameters Parameters
}
