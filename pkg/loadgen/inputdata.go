package loadgen

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// ReadInputData reads a perf_analyzer-style input file: {"data": [request,
// ...]}, each request mapping input names to a JSON array (flat or nested,
// shaped by the model with rows in its first dynamic dimension and the one
// other dynamic dimension, if any, inferred), to {"content": [...],
// "shape": [...]}, or to {"b64": "...", "shape": [...]} for raw
// little-endian bytes. Every input of the model must be given.
func ReadInputData(path string, inputs []protocol.TensorMetadata, rows int64) ([][]tensor.Tensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--input-data: %w", err)
	}
	var file struct {
		Data []map[string]json.RawMessage `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("--input-data %s: not the expected JSON ({\"data\": [{\"input\": [...]}, ...]}): %v", path, err)
	}
	if len(file.Data) == 0 {
		return nil, fmt.Errorf("--input-data %s: \"data\" holds no request", path)
	}
	out := make([][]tensor.Tensor, len(file.Data))
	for k, req := range file.Data {
		for name := range req {
			if !hasInput(inputs, name) {
				return nil, fmt.Errorf("--input-data %s: request %d: the model has no input %q", path, k, name)
			}
		}
		for _, in := range inputs {
			v, ok := req[in.Name]
			if !ok {
				return nil, fmt.Errorf("--input-data %s: request %d lacks input %q", path, k, in.Name)
			}
			t, err := inputFromJSON(in, v, rows)
			if err != nil {
				return nil, fmt.Errorf("--input-data %s: request %d: %w", path, k, err)
			}
			out[k] = append(out[k], t)
		}
	}
	return out, nil
}

func hasInput(inputs []protocol.TensorMetadata, name string) bool {
	for _, in := range inputs {
		if in.Name == name {
			return true
		}
	}
	return false
}

func inputFromJSON(in protocol.TensorMetadata, v json.RawMessage, rows int64) (tensor.Tensor, error) {
	var obj struct {
		Content json.RawMessage `json:"content"`
		B64     string          `json:"b64"`
		Shape   []int64         `json:"shape"`
	}
	data := v
	var shape []int64
	if bytes.HasPrefix(bytes.TrimSpace(v), []byte("{")) {
		if err := json.Unmarshal(v, &obj); err != nil {
			return tensor.Tensor{}, fmt.Errorf("input %q: %v", in.Name, err)
		}
		shape, data = obj.Shape, obj.Content
		if obj.B64 != "" {
			raw, err := base64.StdEncoding.DecodeString(obj.B64)
			if err != nil {
				return tensor.Tensor{}, fmt.Errorf("input %q: b64: %v", in.Name, err)
			}
			dt, ok := tensor.ParseDataType(in.Datatype)
			if !ok || shape == nil {
				return tensor.Tensor{}, fmt.Errorf("input %q: b64 content needs a \"shape\"", in.Name)
			}
			t := tensor.Tensor{Name: in.Name, DataType: dt, Shape: shape, Data: raw}
			if err := t.Validate(); err != nil {
				return tensor.Tensor{}, err
			}
			return t, nil
		}
	}
	if shape == nil {
		n, err := countJSONElements(data)
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("input %q: %v", in.Name, err)
		}
		if shape, err = inferShape(in, n, rows); err != nil {
			return tensor.Tensor{}, err
		}
	}
	return protocol.TensorFromJSON(in.Name, in.Datatype, shape, data)
}

// countJSONElements counts the elements of JSON data, of any nesting.
func countJSONElements(data json.RawMessage) (int64, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, err
	}
	var count func(any) int64
	count = func(v any) int64 {
		if a, ok := v.([]any); ok {
			var n int64
			for _, e := range a {
				n += count(e)
			}
			return n
		}
		return 1
	}
	return count(v), nil
}

// inferShape fills a model shape's dynamic dimensions for n elements: the
// first with rows, and at most one other from what is left.
func inferShape(in protocol.TensorMetadata, n, rows int64) ([]int64, error) {
	shape := append([]int64(nil), in.Shape...)
	known, free := int64(1), -1
	for j, d := range shape {
		switch {
		case d >= 0:
			known *= d
		case j == 0:
			shape[j] = rows
			known *= rows
		case free >= 0:
			return nil, fmt.Errorf("input %q has shape %v, more than one dynamic dimension: give {\"content\": [...], \"shape\": [...]}", in.Name, in.Shape)
		default:
			free = j
		}
	}
	if free >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("input %q: %d elements do not fill shape %v with %d rows", in.Name, n, in.Shape, rows)
		}
		shape[free] = n / known
	}
	return shape, nil
}

// textsTensor encodes strings as a BYTES tensor of the given shape.
func textsTensor(name string, shape []int64, texts []string, next *int) tensor.Tensor {
	var data []byte
	for range tensor.Elements(shape) {
		s := texts[*next%len(texts)]
		*next++
		data = binary.LittleEndian.AppendUint32(data, uint32(len(s)))
		data = append(data, s...)
	}
	return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: shape, Data: data}
}
