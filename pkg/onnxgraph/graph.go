// Package onnxgraph builds ONNX models in Go and encodes them as ONNX
// protobuf (onnx.proto, IR version 8), byte for byte deterministic.
//
// It holds the small part of the format that generated models need: a graph
// of nodes, initializers (weights) and typed inputs and outputs. Field
// numbers follow onnx/onnx.proto; the encoder writes fields in ascending
// order and never reorders maps, so the same Model always encodes to the
// same bytes.
package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DataType is ONNX's TensorProto.DataType.
type DataType int32

// The element types of onnx.proto's TensorProto.DataType.
const (
	Float   DataType = 1
	Uint8   DataType = 2
	Int8    DataType = 3
	Uint16  DataType = 4
	Int16   DataType = 5
	Int32   DataType = 6
	Int64   DataType = 7
	String  DataType = 8
	Bool    DataType = 9
	Float16 DataType = 10
	Double  DataType = 11
	Uint32  DataType = 12
	Uint64  DataType = 13
	BFloat  DataType = 16
)

// IRVersion is the ONNX IR version written into every model: 8 pairs with
// opset 17 (ONNX 1.12), which every ONNX Runtime since 1.12 reads.
const IRVersion = 8

// DefaultOpset is the ai.onnx opset version models use unless they say
// otherwise.
const DefaultOpset = 17

// Dim is one dimension of a value's shape: a fixed size, or a named
// symbolic size when Param is set (encoded as dim_param, read back as -1).
type Dim struct {
	Value int64
	Param string
}

// Fixed returns a dimension of the given size.
func Fixed(n int64) Dim { return Dim{Value: n} }

// Symbolic returns a named dynamic dimension such as "batch".
func Symbolic(name string) Dim { return Dim{Param: name} }

// Value is a graph input or output: a named tensor of an element type and
// shape, or, when Of is set, a value of the type Of describes (a sequence
// or a map) instead.
type Value struct {
	Name  string
	Type  DataType
	Shape []Dim
	Of    *Type
}

// Tensor is a constant tensor: an initializer or a tensor attribute. Raw
// holds the elements little-endian, row-major, as ONNX's raw_data does.
type Tensor struct {
	Name string
	Type DataType
	Dims []int64
	Raw  []byte
}

// Attribute is one node attribute. Exactly one of the value fields is used,
// chosen by which constructor made it.
type Attribute struct {
	Name   string
	kind   int32 // AttributeProto.AttributeType
	f      float32
	i      int64
	s      string
	t      *Tensor
	g      *Graph
	ints   []int64
	floats []float32
}

// AttributeProto.AttributeType values.
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrTensor = 4
	attrGraph  = 5
	attrFloats = 6
	attrInts   = 7
)

// AttrFloat returns a float attribute.
func AttrFloat(name string, v float32) Attribute {
	return Attribute{Name: name, kind: attrFloat, f: v}
}

// AttrInt returns an integer attribute.
func AttrInt(name string, v int64) Attribute { return Attribute{Name: name, kind: attrInt, i: v} }

// AttrString returns a string attribute.
func AttrString(name, v string) Attribute { return Attribute{Name: name, kind: attrString, s: v} }

// AttrInts returns an integer-list attribute.
func AttrInts(name string, v ...int64) Attribute {
	return Attribute{Name: name, kind: attrInts, ints: v}
}

// AttrFloats returns a float-list attribute.
func AttrFloats(name string, v ...float32) Attribute {
	return Attribute{Name: name, kind: attrFloats, floats: v}
}

// AttrTensor returns a tensor attribute (as Constant's "value" takes).
func AttrTensor(name string, t Tensor) Attribute {
	return Attribute{Name: name, kind: attrTensor, t: &t}
}

// AttrGraph returns a subgraph attribute (as Loop's "body" takes).
func AttrGraph(name string, g Graph) Attribute {
	return Attribute{Name: name, kind: attrGraph, g: &g}
}

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Inputs  []string
	Outputs []string
	Attrs   []Attribute
	// Domain is the operator set OpType belongs to: empty for ai.onnx,
	// DomainML for the traditional-ML operators.
	Domain string
}

// Graph is a model's computation: nodes in topological order, their
// constant inputs, and the graph's typed inputs and outputs.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []Value
	Outputs      []Value
}

// Model is a whole ONNX model.
type Model struct {
	Graph         Graph
	Opset         int64 // ai.onnx opset; DefaultOpset when zero
	ProducerName  string
	ProducerVer   string
	DocString     string
	ModelVersion  int64
	MetadataProps [][2]string // key, value pairs, in order
	// Imports are the operator sets the graph uses beside ai.onnx (Opset),
	// such as ai.onnx.ml for a converted scikit-learn model.
	Imports []OpsetImport
}

// OpsetImport names an operator set and the version of it a model uses.
type OpsetImport struct {
	Domain  string
	Version int64
}

// DomainML is the operator set of traditional machine learning
// (classifiers, ZipMap, ...), which converters such as skl2onnx emit.
const DomainML = "ai.onnx.ml"

// Float32Tensor returns an initializer holding float32 values.
func Float32Tensor(name string, dims []int64, v []float32) Tensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	mustCount(name, dims, len(v))
	return Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Float64Tensor returns an initializer holding float64 values.
func Float64Tensor(name string, dims []int64, v []float64) Tensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(x))
	}
	mustCount(name, dims, len(v))
	return Tensor{Name: name, Type: Double, Dims: dims, Raw: raw}
}

// Int64Tensor returns an initializer holding int64 values.
func Int64Tensor(name string, dims []int64, v []int64) Tensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	mustCount(name, dims, len(v))
	return Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// mustCount panics when a constructor's dims and values disagree: that is a
// bug in the generator, never a run-time condition.
func mustCount(name string, dims []int64, n int) {
	want := int64(1)
	for _, d := range dims {
		want *= d
	}
	if want != int64(n) {
		panic(fmt.Sprintf("onnxgraph: tensor %q has dims %v (%d elements) but %d values", name, dims, want, n))
	}
}
