package onnxgraph

import "fmt"

// Builder appends nodes and initializers to a Graph, naming intermediate
// values so that generator code reads as a sequence of operations.
type Builder struct {
	Graph Graph
	seq   int
}

// NewBuilder returns a builder for a graph with the given name.
func NewBuilder(name string) *Builder { return &Builder{Graph: Graph{Name: name}} }

// Input declares a graph input and returns its name.
func (b *Builder) Input(name string, t DataType, shape ...Dim) string {
	b.Graph.Inputs = append(b.Graph.Inputs, Value{Name: name, Type: t, Shape: shape})
	return name
}

// Output declares the value named name as a graph output of type t and shape.
func (b *Builder) Output(name string, t DataType, shape ...Dim) {
	b.Graph.Outputs = append(b.Graph.Outputs, Value{Name: name, Type: t, Shape: shape})
}

// Init adds an initializer and returns its name.
func (b *Builder) Init(t Tensor) string {
	b.Graph.Initializers = append(b.Graph.Initializers, t)
	return t.Name
}

// Op appends a node with one output and returns that output's generated
// name.
func (b *Builder) Op(opType string, inputs []string, attrs ...Attribute) string {
	return b.OpNamed("", opType, inputs, attrs...)
}

// OpNamed appends a node with one output called out (a generated name when
// out is empty) and returns out.
func (b *Builder) OpNamed(out, opType string, inputs []string, attrs ...Attribute) string {
	b.seq++
	if out == "" {
		out = fmt.Sprintf("%s_%d", opType, b.seq)
	}
	b.Graph.Nodes = append(b.Graph.Nodes, Node{
		Name:    fmt.Sprintf("%s_node_%d", opType, b.seq),
		OpType:  opType,
		Inputs:  inputs,
		Outputs: []string{out},
		Attrs:   attrs,
	})
	return out
}

// OutputOf declares the value named name as a graph output of type t: a
// sequence or a map, which Output cannot describe.
func (b *Builder) OutputOf(name string, t Type) {
	b.Graph.Outputs = append(b.Graph.Outputs, Value{Name: name, Of: &t})
}

// OpIn appends a node of operator set domain (DomainML, say) whose outputs
// are named outs, for operators of several outputs such as a classifier's
// label and scores.
func (b *Builder) OpIn(domain, opType string, inputs, outs []string, attrs ...Attribute) {
	b.seq++
	b.Graph.Nodes = append(b.Graph.Nodes, Node{
		Name:    fmt.Sprintf("%s_node_%d", opType, b.seq),
		OpType:  opType,
		Inputs:  inputs,
		Outputs: outs,
		Attrs:   attrs,
		Domain:  domain,
	})
}
