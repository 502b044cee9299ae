package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/infer-serving/infer/pkg/tensor"
)

// MaxTensorElements bounds the element count one tensor's shape may
// declare. It is no bound on memory: the decoder allocates for the data a
// body holds, never for what its shape declares, and refuses a shape
// whose count the data does not match.
const MaxTensorElements = 1 << 31

// wire forms of a request and a response's JSON part.
type (
	wireRequest struct {
		ID         string       `json:"id,omitempty"`
		Parameters Parameters   `json:"parameters,omitempty"`
		Inputs     []wireTensor `json:"inputs"`
		Outputs    []wireOutput `json:"outputs,omitempty"`
	}
	wireTensor struct {
		Name       string          `json:"name"`
		Shape      []int64         `json:"shape"`
		Datatype   string          `json:"datatype"`
		Parameters Parameters      `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data,omitempty"`
	}
	wireOutput struct {
		Name       string     `json:"name"`
		Parameters Parameters `json:"parameters,omitempty"`
	}
	wireResponse struct {
		ModelName    string       `json:"model_name"`
		ModelVersion string       `json:"model_version,omitempty"`
		ID           string       `json:"id,omitempty"`
		Parameters   Parameters   `json:"parameters,omitempty"`
		Outputs      []wireTensor `json:"outputs"`
	}
)

// ErrBadRequest marks every decoding error: the request, not the server, is
// at fault.
var ErrBadRequest = errors.New("bad request")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// split separates a body into its JSON header and its binary part, given
// the Inference-Header-Content-Length value (-1 when absent: all JSON).
func split(body []byte, headerLength int64) ([]byte, []byte, error) {
	if headerLength < 0 {
		return body, nil, nil
	}
	if headerLength > int64(len(body)) {
		return nil, nil, badf("%s is %d but the body has %d bytes", HeaderContentLength, headerLength, len(body))
	}
	return body[:headerLength], body[headerLength:], nil
}

// ParseHeaderLength parses the Inference-Header-Content-Length header
// value, a decimal byte count; an empty value means none (-1).
func ParseHeaderLength[T string | []byte](v T) (int64, error) {
	if len(v) == 0 {
		return -1, nil
	}
	var n int64
	for i := 0; i < len(v); i++ {
		d := v[i] - '0'
		if d > 9 || n > (math.MaxInt64-int64(d))/10 {
			return 0, badf("%s %s is not a byte count", HeaderContentLength, Clip(string(v)))
		}
		n = n*10 + int64(d)
	}
	return n, nil
}

// DecodeRequest decodes an infer request body. headerLength is the
// Inference-Header-Content-Length value, -1 when the body is all JSON.
// Binary tensor data is not copied: the returned tensors alias body.
func DecodeRequest(body []byte, headerLength int64) (*InferRequest, error) {
	return new(RequestDecoder).Decode(body, headerLength)
}

// Decode decodes an infer request body, as DecodeRequest does, into the
// decoder's memory (see RequestDecoder). headerLength is the
// Inference-Header-Content-Length value, -1 when the body is all JSON.
func (d *RequestDecoder) Decode(body []byte, headerLength int64) (*InferRequest, error) {
	header, bin, err := split(body, headerLength)
	if err != nil {
		return nil, err
	}
	d.Reset()
	w := &d.r
	if err := scanRequest(&d.s, w, header); err != nil {
		return nil, err
	}
	req := &d.req
	req.ID, req.Parameters = w.ID, w.Parameters
	if req.Inputs == nil {
		req.Inputs = make([]tensor.Tensor, 0, len(w.Inputs))
	}
	if req.BinaryOutput, err = w.Parameters.Bool(ParamBinaryDataOutput); err != nil {
		return nil, badf("%v", err)
	}
	for i := range w.Inputs {
		t, rest, err := decodeScanned(&w.Inputs[i], bin)
		if err != nil {
			return nil, err
		}
		bin = rest
		req.Inputs = append(req.Inputs, t)
	}
	if len(bin) > 0 {
		return nil, badf("%d bytes of binary data follow the inputs that declare %s", len(bin), ParamBinaryDataSize)
	}
	for _, o := range w.Outputs {
		if err := CheckName(o.Name, "requested output"); err != nil {
			return nil, err
		}
		b, err := o.Parameters.Bool(ParamBinaryData)
		if err != nil {
			return nil, badf("output %q: %v", o.Name, err)
		}
		classes, err := o.Parameters.Classes()
		if err != nil {
			return nil, badf("output %q: %v", o.Name, err)
		}
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name, Binary: b, Classes: classes})
	}
	return req, nil
}

// MaxRequestTensors bounds the inputs, and the outputs asked for, of one
// request: far more than any model takes, and few enough that a body of
// nulls cannot make the decoder hold thousands of times its size.
const MaxRequestTensors = 1024

// MaxRequestIDBytes bounds a request's id, in bytes as sent (a JSON
// string's escapes counted as written). An id correlates a request with
// its answer (a UUID is 36 bytes, a W3C trace id 32 hex digits), and is
// echoed in the answer: a 60 MB id of bytes that are not UTF-8 cost the
// server twenty times its size to answer.
const MaxRequestIDBytes = 1024

// MaxNameBytes bounds a tensor's name in a request, in bytes: every
// message about a tensor quotes its name.
const MaxNameBytes = 1024

// CheckName refuses an empty name, or one over MaxNameBytes; kind is
// "input", "output" or "requested output", for the message.
func CheckName(name, kind string) error {
	switch {
	case name == "":
		return badf("%s without a name", kind)
	case len(name) > MaxNameBytes:
		return badf("%s %s: a name of %d bytes, over the %d a name may have", kind, Clip(name), len(name), MaxNameBytes)
	}
	return nil
}

// decodeScanned turns one scanned input into a tensor, as decodeTensor
// does, using the data already parsed when there is.
func decodeScanned(st *scannedTensor, bin []byte) (tensor.Tensor, []byte, error) {
	var parsed *scannedTensor
	if st.parsed {
		parsed = st
	}
	return decodeTensor(st.wire, parsed, bin, "input")
}

// decodeTensor turns one wire tensor into a tensor, taking its binary
// data from the front of bin when it declares binary_data_size, and
// returns what is left of bin. parsed, when not nil, holds the JSON data
// already parsed. kind is "input" or "output", for messages.
func decodeTensor(w wireTensor, parsed *scannedTensor, bin []byte, kind string) (tensor.Tensor, []byte, error) {
	if err := CheckName(w.Name, kind); err != nil {
		return tensor.Tensor{}, bin, err
	}
	dt, ok := tensor.ParseDataType(w.Datatype)
	if !ok {
		return tensor.Tensor{}, bin, badf("%s %q: unknown datatype %s", kind, w.Name, Clip(w.Datatype))
	}
	n, err := declaredElements(w.Shape)
	if err != nil {
		return tensor.Tensor{}, bin, badf("%s %q: %v", kind, w.Name, err)
	}
	t := tensor.Tensor{Name: w.Name, DataType: dt, Shape: w.Shape}
	size, isBinary, err := w.Parameters.Int(ParamBinaryDataSize)
	if err != nil {
		return t, bin, badf("%s %q: %v", kind, w.Name, err)
	}
	if isBinary {
		if len(w.Data) > 0 {
			return t, bin, badf("%s %q: both %s and JSON data", kind, w.Name, ParamBinaryDataSize)
		}
		if size > int64(len(bin)) {
			return t, bin, badf("%s %q: %s is %d but only %d binary bytes remain", kind, w.Name, ParamBinaryDataSize, size, len(bin))
		}
		if dt != tensor.Bytes {
			if want := n * int64(dt.Size()); size != want { // n <= MaxTensorElements: no overflow
				return t, bin, badf("%s %q: shape %v of %s declares %d elements and needs %d bytes, %s is %d", kind, w.Name, w.Shape, dt, n, want, ParamBinaryDataSize, size)
			}
		}
		t.Data, bin = bin[:size:size], bin[size:]
	} else if parsed != nil {
		if parsed.count != n {
			return t, bin, badf("%s %q: shape %v declares %d elements, data holds %d", kind, w.Name, w.Shape, n, parsed.count)
		}
		t.Data = parsed.data
	} else {
		if len(w.Data) == 0 {
			return t, bin, badf("%s %q: no data (give JSON data or %s)", kind, w.Name, ParamBinaryDataSize)
		}
		var dst []byte
		if dt != tensor.Bytes {
			// Room for the declared elements, but never for more than the
			// JSON text can spell: the shape is only a claim.
			dst = make([]byte, 0, min(n, maxJSONElements(len(w.Data)))*int64(dt.Size()))
		}
		data, count, err := appendJSONData(dst, w.Data, dt)
		if err != nil {
			return t, bin, badf("%s %q: data: %v", kind, w.Name, err)
		}
		if count != n {
			return t, bin, badf("%s %q: shape %v declares %d elements, data holds %d", kind, w.Name, w.Shape, n, count)
		}
		t.Data = data
	}
	if err := t.Validate(); err != nil {
		return t, bin, badf("%s", err)
	}
	return t, bin, nil
}

// declaredElements returns the element count a wire tensor's shape
// declares, checked without allocating: the shape must be present, of at
// most tensor.MaxRank dimensions, none negative, and its product at most
// MaxTensorElements.
func declaredElements(shape []int64) (int64, error) {
	if shape == nil {
		return 0, errors.New("no shape")
	}
	n, err := tensor.ElementsChecked(shape)
	if err != nil {
		return 0, err
	}
	if n > MaxTensorElements {
		return 0, fmt.Errorf("shape %v declares %d elements, more than the %d a tensor may hold", shape, n, int64(MaxTensorElements))
	}
	return n, nil
}

// maxJSONElements bounds the scalars that l bytes of JSON data can hold:
// each takes at least one byte, and a comma separates it from the next.
func maxJSONElements(l int) int64 { return (int64(l) + 1) / 2 }

// Encode returns the request as a body, with its JSON header length when
// binary is set (all inputs as binary data), else -1.
func (r *InferRequest) Encode(binary bool) ([]byte, int64, error) {
	w := wireRequest{ID: r.ID, Parameters: r.Parameters, Inputs: make([]wireTensor, len(r.Inputs))}
	if r.BinaryOutput {
		w.Parameters = withParam(w.Parameters, ParamBinaryDataOutput, true)
	}
	var bin []byte
	for i, t := range r.Inputs {
		wt, err := wireOf(t, binary)
		if err != nil {
			return nil, 0, err
		}
		w.Inputs[i] = wt
		if binary {
			bin = append(bin, t.Data...)
		}
	}
	for _, o := range r.Outputs {
		wo := wireOutput{Name: o.Name}
		if o.Binary {
			wo.Parameters = withParam(wo.Parameters, ParamBinaryData, true)
		}
		if o.Classes > 0 {
			wo.Parameters = withParam(wo.Parameters, ParamClassification, o.Classes)
		}
		w.Outputs = append(w.Outputs, wo)
	}
	return encodeBody(w, bin, binary)
}

// Encode returns the response as a body and the length of its JSON header,
// or -1 when no output is binary.
func (r *InferResponse) Encode() ([]byte, int64, error) { return r.AppendTo(nil) }

func encodeBody(w any, bin []byte, binary bool) ([]byte, int64, error) {
	header, err := json.Marshal(w)
	if err != nil {
		return nil, 0, err
	}
	if !binary {
		return header, -1, nil
	}
	return append(header, bin...), int64(len(header)), nil
}

func wireOf(t tensor.Tensor, binary bool) (wireTensor, error) {
	w := wireTensor{Name: t.Name, Shape: t.Shape, Datatype: t.DataType.String()}
	if w.Shape == nil {
		w.Shape = []int64{}
	}
	if binary {
		w.Parameters = Parameters{ParamBinaryDataSize: len(t.Data)}
		return w, nil
	}
	data, err := appendJSONValues(nil, t)
	if err != nil {
		return w, err
	}
	w.Data = data
	return w, nil
}

func withParam(p Parameters, k string, v any) Parameters {
	out := make(Parameters, len(p)+1)
	for key, val := range p {
		out[key] = val
	}
	out[k] = v
	return out
}

// DecodeResponse decodes an infer response body; headerLength is -1 when
// the body is all JSON. Error bodies ({"error": ...}) are returned as
// errors.
func DecodeResponse(body []byte, headerLength int64) (*InferResponse, error) {
	header, bin, err := split(body, headerLength)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(bytes.TrimSpace(header), []byte(`{"error"`)) {
		var e Error
		if json.Unmarshal(header, &e) == nil {
			return nil, errors.New(e.Error)
		}
	}
	var w wireResponse
	if err := json.Unmarshal(header, &w); err != nil {
		return nil, fmt.Errorf("response JSON: %w", err)
	}
	resp := &InferResponse{ModelName: w.ModelName, ModelVersion: w.ModelVersion, ID: w.ID, Parameters: w.Parameters}
	for _, o := range w.Outputs {
		t, rest, err := decodeTensor(o, nil, bin, "output")
		if err != nil {
			return nil, err
		}
		bin = rest
		resp.Outputs = append(resp.Outputs, t)
	}
	return resp, nil
}

// TensorFromJSON builds a tensor from JSON data (flat or nested), which
// must hold exactly the elements of shape.
func TensorFromJSON(name, datatype string, shape []int64, data json.RawMessage) (tensor.Tensor, error) {
	t, _, err := decodeTensor(wireTensor{Name: name, Shape: shape, Datatype: datatype, Data: data}, nil, nil, "input")
	return t, err
}
