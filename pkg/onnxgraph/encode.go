package onnxgraph

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers from onnx/onnx.proto.
const (
	modelIRVersion     = 1
	modelProducerName  = 2
	modelProducerVer   = 3
	modelVersion       = 5
	modelDocString     = 6
	modelGraph         = 7
	modelOpsetImport   = 8
	modelMetadataProps = 14

	opsetDomain  = 1
	opsetVersion = 2

	stringEntryKey   = 1
	stringEntryValue = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDomain    = 7

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrS      = 4
	attrT      = 5
	attrG      = 6
	attrFs     = 7
	attrIs     = 8
	attrTypeNo = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor = 1

	tensorTypeElem  = 1
	tensorTypeShape = 2

	shapeDim = 1

	dimValue = 1
	dimParam = 2
)

// Encode returns the model as ONNX protobuf bytes.
func (m *Model) Encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, modelIRVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, IRVersion)
	b = appendString(b, modelProducerName, m.ProducerName)
	b = appendString(b, modelProducerVer, m.ProducerVer)
	if m.ModelVersion != 0 {
		b = protowire.AppendTag(b, modelVersion, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.ModelVersion))
	}
	b = appendString(b, modelDocString, m.DocString)
	b = appendMessage(b, modelGraph, m.Graph.encode())
	opset := m.Opset
	if opset == 0 {
		opset = DefaultOpset
	}
	var op []byte
	op = appendString(op, opsetDomain, "")
	op = protowire.AppendTag(op, opsetVersion, protowire.VarintType)
	op = protowire.AppendVarint(op, uint64(opset))
	b = appendMessage(b, modelOpsetImport, op)
	for _, imp := range m.Imports {
		var op []byte
		op = appendString(op, opsetDomain, imp.Domain)
		op = protowire.AppendTag(op, opsetVersion, protowire.VarintType)
		op = protowire.AppendVarint(op, uint64(imp.Version))
		b = appendMessage(b, modelOpsetImport, op)
	}
	for _, kv := range m.MetadataProps {
		var e []byte
		e = appendString(e, stringEntryKey, kv[0])
		e = appendString(e, stringEntryValue, kv[1])
		b = appendMessage(b, modelMetadataProps, e)
	}
	return b
}

func (g *Graph) encode() []byte {
	var b []byte
	for i := range g.Nodes {
		b = appendMessage(b, graphNode, g.Nodes[i].encode())
	}
	b = appendString(b, graphName, g.Name)
	for i := range g.Initializers {
		b = appendMessage(b, graphInitializer, g.Initializers[i].encode())
	}
	for i := range g.Inputs {
		b = appendMessage(b, graphInput, g.Inputs[i].encode())
	}
	for i := range g.Outputs {
		b = appendMessage(b, graphOutput, g.Outputs[i].encode())
	}
	return b
}

func (n *Node) encode() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, nodeInput, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, nodeOutput, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, nodeName, n.Name)
	b = appendString(b, nodeOpType, n.OpType)
	for i := range n.Attrs {
		b = appendMessage(b, nodeAttribute, n.Attrs[i].encode())
	}
	return appendString(b, nodeDomain, n.Domain)
}

func (a *Attribute) encode() []byte {
	var b []byte
	b = appendString(b, attrName, a.Name)
	switch a.kind {
	case attrFloat:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case attrInt:
		b = protowire.AppendTag(b, attrI, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	case attrString:
		b = protowire.AppendTag(b, attrS, protowire.BytesType)
		b = protowire.AppendString(b, a.s)
	case attrTensor:
		b = appendMessage(b, attrT, a.t.encode())
	case attrGraph:
		b = appendMessage(b, attrG, a.g.encode())
	case attrFloats:
		var p []byte
		for _, f := range a.floats {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMessage(b, attrFs, p)
	case attrInts:
		var p []byte
		for _, v := range a.ints {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = appendMessage(b, attrIs, p)
	}
	b = protowire.AppendTag(b, attrTypeNo, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(a.kind))
	return b
}

func (t *Tensor) encode() []byte {
	var b []byte
	if len(t.Dims) > 0 {
		var p []byte
		for _, d := range t.Dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = appendMessage(b, tensorDims, p)
	}
	b = protowire.AppendTag(b, tensorDataType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.Type))
	b = appendString(b, tensorName, t.Name)
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	b = protowire.AppendBytes(b, t.Raw)
	return b
}

func (v *Value) encode() []byte {
	t := TensorType(v.Type, v.Shape...)
	if v.Of != nil {
		t = *v.Of
	}
	var b []byte
	b = appendString(b, valueName, v.Name)
	b = appendMessage(b, valueType, t.encode())
	return b
}

// appendString writes a string field, omitting it when empty as proto3
// would; ONNX readers treat a missing string as empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
