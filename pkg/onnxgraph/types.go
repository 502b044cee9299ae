package onnxgraph

import (
	"fmt"
	"strings"

	"github.com/infer-serving/infer/pkg/protowalk"
	"google.golang.org/protobuf/encoding/protowire"
)

// Type is a value's type as onnx.proto's TypeProto spells it: a tensor, a
// sequence of values of one type, or a map from scalar keys to values of
// one type. A converted scikit-learn classifier's probabilities, for one,
// are SequenceOf(MapOf(Int64, TensorType(Float))): ZipMap's output, one
// map of class to probability a row.
type Type struct {
	kind  string
	elem  DataType // a tensor's element type, a map's key type
	shape []Dim    // a tensor's
	inner *Type    // a sequence's element type, a map's value type
}

// TensorType returns the type of a tensor of element type t and shape.
func TensorType(t DataType, shape ...Dim) Type {
	return Type{kind: KindTensor, elem: t, shape: shape}
}

// SequenceOf returns the type of a sequence whose elements are of type elem.
func SequenceOf(elem Type) Type { return Type{kind: KindSequence, inner: &elem} }

// MapOf returns the type of a map from keys of type key (an integer or
// string type) to values of type value.
func MapOf(key DataType, value Type) Type {
	return Type{kind: KindMap, elem: key, inner: &value}
}

// Field numbers of TypeProto's nested messages, from onnx/onnx.proto.
const (
	sequenceElemType = 1 // TypeProto.Sequence.elem_type
	mapKeyType       = 1 // TypeProto.Map.key_type
	mapValueType     = 2 // TypeProto.Map.value_type
	optionalElemType = 1 // TypeProto.Optional.elem_type
)

// encode returns t as a TypeProto.
func (t *Type) encode() []byte {
	var b []byte
	switch t.kind {
	case KindTensor:
		b = appendMessage(b, typeTensor, encodeTensorType(t.elem, t.shape))
	case KindSequence:
		b = appendMessage(b, typeSequence, appendMessage(nil, sequenceElemType, t.inner.encode()))
	case KindMap:
		var m []byte
		m = protowire.AppendTag(m, mapKeyType, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(t.elem))
		m = appendMessage(m, mapValueType, t.inner.encode())
		b = appendMessage(b, typeMap, m)
	}
	return b
}

// encodeTensorType returns a TypeProto.Tensor: element type and shape.
func encodeTensorType(elem DataType, dims []Dim) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		if d.Param != "" {
			dim = appendString(dim, dimParam, d.Param)
		} else {
			dim = protowire.AppendTag(dim, dimValue, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.Value))
		}
		shape = appendMessage(shape, shapeDim, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, tensorTypeElem, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(elem))
	return appendMessage(tt, tensorTypeShape, shape)
}

// maxTypeDepth bounds how deeply ReadInterface follows nested types (a
// sequence of maps of ...): a hostile file cannot make it recurse without
// end. A type nested deeper is reported with its kind and no element.
const maxTypeDepth = 8

// readType reads a TypeProto into p: its kind, and a tensor's element type
// and shape, a map's key type, a sequence's, optional's or map's element.
func readType(b []byte, p *Port, depth int) error {
	return walk(b, func(num protowire.Number, v []byte) error {
		switch num {
		case typeTensor:
			p.Kind = KindTensor
			return readTensorType(v, p)
		case typeSequence:
			p.Kind = KindSequence
			return readElem(v, sequenceElemType, p, depth)
		case typeOptional:
			p.Kind = KindOptional
			return readElem(v, optionalElemType, p, depth)
		case typeMap:
			p.Kind = KindMap
			err := protowalk.Fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
				if num == mapKeyType && typ == protowire.VarintType {
					p.Key = DataType(int32(n))
				}
				return nil
			})
			if err != nil {
				return err
			}
			return readElem(v, mapValueType, p, depth)
		case typeSparseTensor:
			p.Kind = KindSparseTensor
		}
		return nil
	})
}

// readElem reads the element type in field num of a sequence, optional
// or map type into p.Elem, unless it is nested past maxTypeDepth.
func readElem(b []byte, num protowire.Number, p *Port, depth int) error {
	elem, err := field(b, num)
	if err != nil || elem == nil || depth >= maxTypeDepth {
		return err
	}
	p.Elem = &Port{}
	return readType(elem, p.Elem, depth+1)
}

// TypeString returns p's type as ONNX writes type strings: "tensor(float)",
// "seq(map(int64,tensor(float)))"; "?" stands for what the file does not
// give (or nests too deeply to read).
func (p *Port) TypeString() string {
	var s strings.Builder
	p.appendType(&s)
	return s.String()
}

func (p *Port) appendType(s *strings.Builder) {
	elem := func() {
		if p.Elem == nil {
			s.WriteString("?")
			return
		}
		p.Elem.appendType(s)
	}
	switch p.Kind {
	case KindTensor:
		fmt.Fprintf(s, "tensor(%s)", p.Type)
	case KindSparseTensor:
		fmt.Fprintf(s, "sparse_tensor(%s)", p.Type)
	case KindSequence:
		s.WriteString("seq(")
		elem()
		s.WriteString(")")
	case KindOptional:
		s.WriteString("optional(")
		elem()
		s.WriteString(")")
	case KindMap:
		fmt.Fprintf(s, "map(%s,", p.Key)
		elem()
		s.WriteString(")")
	default:
		s.WriteString("?")
	}
}

var dataTypeNames = map[DataType]string{
	Float: "float", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", String: "string", Bool: "bool", Float16: "float16",
	Double: "double", Uint32: "uint32", Uint64: "uint64", BFloat: "bfloat16",
}

// String returns the element type's name in ONNX's type strings, such as
// "float" or "int64".
func (d DataType) String() string {
	if n, ok := dataTypeNames[d]; ok {
		return n
	}
	return fmt.Sprintf("type %d", int32(d))
}
