package runner

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Outputs that are not tensors. Converters of classical models write
// them: skl2onnx ends a classifier with ZipMap, whose probabilities are a
// sequence of maps from class to probability, one map a row. The protocol
// carries only tensors, so such an output is served as a BYTES tensor of
// one element a map, each element the map as a compact JSON object with
// its keys as strings ({"0":0.17,"1":0.75,"2":0.08}), in the order the
// runtime gives them. A sequence of N maps is a BYTES tensor of shape [N]
// (a batched model's rows, split per request as any output is), one map a
// scalar. The conversion happens where the runtime's outputs are read, in
// the model host or the in-process instance, so that batching, the
// response cache and every encoding only ever see tensors.
//
// An output that no such conversion carries (a sequence of tensors,
// nested sequences, an optional, a map whose values are not scalars) does
// not make the model unavailable: its session is created without it, the
// other outputs serve, and a request that names it is refused with the
// reason (UnservedOutput).

// ContentJSON is TensorSpec.Content for a BYTES output converted from a
// map or a sequence of maps: each element is one map as a JSON object.
const ContentJSON = "json"

// UnservedOutput is a model output that no protocol tensor carries: it is
// left out of the session, the response and the metadata's outputs.
type UnservedOutput struct {
	Name string
	// ONNXType is its type as ONNX writes it, "seq(tensor(float))".
	ONNXType string
	// Reason says why it is not served.
	Reason string
}

// mapKeyTypes are the key types of maps that convert to JSON objects (the
// integer and string types ONNX allows), and mapValueTypes the element
// types of their values (the ones ONNX Runtime's maps and ZipMap produce,
// and their kin).
var (
	mapKeyTypes = map[onnxgraph.DataType]bool{
		onnxgraph.String: true, onnxgraph.Int8: true, onnxgraph.Int16: true, onnxgraph.Int32: true, onnxgraph.Int64: true,
		onnxgraph.Uint8: true, onnxgraph.Uint16: true, onnxgraph.Uint32: true, onnxgraph.Uint64: true,
	}
	mapValueTypes = map[onnxgraph.DataType]bool{
		onnxgraph.Float: true, onnxgraph.Double: true, onnxgraph.String: true, onnxgraph.Bool: true,
		onnxgraph.Int8: true, onnxgraph.Int16: true, onnxgraph.Int32: true, onnxgraph.Int64: true,
		onnxgraph.Uint8: true, onnxgraph.Uint16: true, onnxgraph.Uint32: true, onnxgraph.Uint64: true,
	}
)

// outputSpecs converts a graph's outputs as the ONNX file declares them:
// tensors as specsFromPorts does, maps and sequences of maps as BYTES
// tensors of JSON (ContentJSON), and the rest into unserved.
func outputSpecs(ports []onnxgraph.Port) (specs []TensorSpec, unserved []UnservedOutput, err error) {
	for _, p := range ports {
		if p.Kind == onnxgraph.KindTensor {
			s, err := specsFromPorts([]onnxgraph.Port{p})
			if err != nil {
				return nil, nil, err
			}
			specs = append(specs, s[0])
			continue
		}
		shape, reason := jsonShape(p)
		if reason != "" {
			unserved = append(unserved, UnservedOutput{Name: p.Name, ONNXType: p.TypeString(), Reason: reason})
			continue
		}
		specs = append(specs, TensorSpec{Name: p.Name, DataType: tensor.Bytes, Shape: shape, Content: ContentJSON, ONNXType: p.TypeString()})
	}
	if len(specs) == 0 && len(unserved) > 0 {
		return nil, nil, fmt.Errorf("%q is a %s: %s, and the model has no other output", unserved[0].Name, unserved[0].ONNXType, unserved[0].Reason)
	}
	return specs, unserved, nil
}

// jsonShape returns the BYTES shape a non-tensor output is served as,
// [-1] for a sequence of maps and [] for a map, or why it cannot be.
func jsonShape(p onnxgraph.Port) ([]int64, string) {
	switch p.Kind {
	case onnxgraph.KindMap:
		if reason := jsonMap(p); reason != "" {
			return nil, reason
		}
		return []int64{}, ""
	case onnxgraph.KindSequence:
		switch {
		case p.Elem == nil:
			return nil, "the file does not say what the sequence holds"
		case p.Elem.Kind == onnxgraph.KindMap:
			if reason := jsonMap(*p.Elem); reason != "" {
				return nil, reason
			}
			return []int64{-1}, ""
		case p.Elem.Kind == onnxgraph.KindSequence:
			return nil, "nested sequences are not served"
		default:
			return nil, "a sequence of " + p.Elem.TypeString() + " is not served; only maps and sequences of maps are (as JSON)"
		}
	case "":
		return nil, "the file declares no type for it"
	}
	return nil, "only tensors, maps and sequences of maps are served"
}

// jsonMap returns why map p does not convert to a JSON object, or "".
func jsonMap(p onnxgraph.Port) string {
	if !mapKeyTypes[p.Key] {
		return fmt.Sprintf("map keys of type %s are not served", p.Key)
	}
	if p.Elem == nil || p.Elem.Kind != onnxgraph.KindTensor || !mapValueTypes[p.Elem.Type] || len(p.Elem.Shape) > 1 || len(p.Elem.Shape) == 1 && p.Elem.Shape[0] > 1 {
		elem := "?"
		if p.Elem != nil {
			elem = p.Elem.TypeString()
		}
		return "map values of type " + elem + " are not served; only scalar values are"
	}
	return ""
}

// jsonOutput converts a runtime value of output spec (ContentJSON) into
// BYTES data, each element one map as a JSON object, and its shape: [N]
// for a sequence of N maps, [] for a map.
func jsonOutput(v ort.Value, spec TensorSpec) ([]byte, []int64, error) {
	switch v := v.(type) {
	case *ort.Map:
		b, err := appendMapElement(nil, v)
		if err != nil {
			return nil, nil, fmt.Errorf("output %q: %w", spec.Name, err)
		}
		return b, []int64{}, nil
	case *ort.Sequence:
		elems, err := v.GetValues()
		if err != nil {
			return nil, nil, fmt.Errorf("output %q: %w", spec.Name, err)
		}
		var b []byte
		for i, e := range elems {
			m, ok := e.(*ort.Map)
			if !ok {
				return nil, nil, fmt.Errorf("output %q: element %d is a %T, want a map", spec.Name, i, e)
			}
			if b, err = appendMapElement(b, m); err != nil {
				return nil, nil, fmt.Errorf("output %q: element %d: %w", spec.Name, i, err)
			}
		}
		return b, []int64{int64(len(elems))}, nil
	}
	return nil, nil, fmt.Errorf("output %q: the runtime returned a %s, want a map or a sequence of maps", spec.Name, v.GetONNXType())
}

// appendMapElement appends m as one BYTES element: a 4-byte little-endian
// length, then the map as a JSON object.
func appendMapElement(dst []byte, m *ort.Map) ([]byte, error) {
	keys, values, err := m.GetKeysAndValues()
	if err != nil {
		return nil, err
	}
	n, key, err := scalars(keys, true)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	nv, value, err := scalars(values, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	if n != nv {
		return nil, fmt.Errorf("%d keys and %d values", n, nv)
	}
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0, '{')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = key(dst, i)
		dst = append(dst, ':')
		dst = value(dst, i)
	}
	dst = append(dst, '}')
	size := len(dst) - at - 4
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("a map of %d bytes as JSON", size)
	}
	binary.LittleEndian.PutUint32(dst[at:], uint32(size))
	return dst, nil
}

// scalars returns how many elements a map's keys or values hold and a
// function that appends element i as JSON: a number as a JSON number (a
// non-finite one as null, which JSON cannot spell otherwise), a string as
// a JSON string, and, for keys, a number as a string too, since a JSON
// object's keys are strings.
func scalars(v ort.Value, keys bool) (int, func(dst []byte, i int) []byte, error) {
	var n int
	var f func([]byte, int) []byte
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		n, f = len(t.GetData()), floatsOf(t.GetData(), 32)
	case *ort.Tensor[float64]:
		n, f = len(t.GetData()), floatsOf(t.GetData(), 64)
	case *ort.Tensor[int64]:
		n, f = len(t.GetData()), intsOf(t.GetData())
	case *ort.Tensor[int32]:
		n, f = len(t.GetData()), intsOf(t.GetData())
	case *ort.Tensor[int16]:
		n, f = len(t.GetData()), intsOf(t.GetData())
	case *ort.Tensor[int8]:
		n, f = len(t.GetData()), intsOf(t.GetData())
	case *ort.Tensor[uint64]:
		n, f = len(t.GetData()), uintsOf(t.GetData())
	case *ort.Tensor[uint32]:
		n, f = len(t.GetData()), uintsOf(t.GetData())
	case *ort.Tensor[uint16]:
		n, f = len(t.GetData()), uintsOf(t.GetData())
	case *ort.Tensor[uint8]:
		n, f = len(t.GetData()), uintsOf(t.GetData())
	case *ort.Tensor[bool]:
		d := t.GetData()
		n, f = len(d), func(dst []byte, i int) []byte { return strconv.AppendBool(dst, d[i]) }
	case *ort.StringTensor:
		s, err := t.GetContents()
		if err != nil {
			return 0, nil, err
		}
		return len(s), func(dst []byte, i int) []byte {
			b, _ := json.Marshal(s[i]) // a string always marshals
			return append(dst, b...)
		}, nil
	default:
		return 0, nil, fmt.Errorf("a runtime value of type %T, which is not served", v)
	}
	if !keys {
		return n, f, nil
	}
	return n, func(dst []byte, i int) []byte {
		dst = append(dst, '"')
		return append(f(dst, i), '"')
	}, nil
}

func intsOf[T int8 | int16 | int32 | int64](d []T) func([]byte, int) []byte {
	return func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(d[i]), 10) }
}

func uintsOf[T uint8 | uint16 | uint32 | uint64](d []T) func([]byte, int) []byte {
	return func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(d[i]), 10) }
}

// floatsOf appends each element in the shortest form that reads back as
// the same float of its size.
func floatsOf[T float32 | float64](d []T, bits int) func([]byte, int) []byte {
	return func(dst []byte, i int) []byte {
		f := float64(d[i])
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits)
	}
}

// distinctPorts refuses a graph whose inputs or outputs repeat a name, or
// whose output is one of its inputs: the runtime writes such an output
// into the buffer bound for it only once, or never (no node computes an
// input), so the answer would hold zeros where the values belong.
func distinctPorts(it *onnxgraph.Interface) error {
	inputs := make(map[string]bool, len(it.Inputs))
	for _, p := range it.Inputs {
		if inputs[p.Name] {
			return fmt.Errorf("input %q: the graph lists it twice", p.Name)
		}
		inputs[p.Name] = true
	}
	outputs := make(map[string]bool, len(it.Outputs))
	for _, p := range it.Outputs {
		switch {
		case outputs[p.Name]:
			return fmt.Errorf("output %q: the graph lists it twice, and the runtime writes only one of them", p.Name)
		case inputs[p.Name]:
			return fmt.Errorf("output %q is also an input of the graph: no node computes it, and the runtime would not write it into the answer (pass it through an Identity node)", p.Name)
		}
		outputs[p.Name] = true
	}
	return nil
}
