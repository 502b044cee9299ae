package onnxgraph

import (
	"errors"
	"fmt"

	"github.com/infer-serving/infer/pkg/protowalk"
	"google.golang.org/protobuf/encoding/protowire"
)

// TypeProto's value kinds (onnx.proto's oneof value), as Port.Kind names
// them.
const (
	KindTensor       = "tensor"
	KindSequence     = "sequence"
	KindMap          = "map"
	KindOptional     = "optional"
	KindSparseTensor = "sparse_tensor"
)

// Field numbers read by ReadInterface, from onnx/onnx.proto, beside the
// ones the encoder writes.
const (
	typeSequence     = 4
	typeMap          = 5
	typeSparseTensor = 8
	typeOptional     = 9
)

// Port is one graph input or output as an ONNX file declares it.
type Port struct {
	Name string
	// Kind is KindTensor, KindSequence, KindMap, KindOptional or
	// KindSparseTensor; empty when the file gives no type.
	Kind string
	// Type is a tensor's element type.
	Type DataType
	// Shape is a tensor's shape: -1 for a symbolic or unknown dimension,
	// empty for a scalar or a shape the file does not give.
	Shape []int64
	// Key is a map's key type.
	Key DataType
	// Elem is the type of a sequence's or an optional's element, or of a
	// map's values; nil when the file does not give it. Its Name is empty.
	Elem *Port
}

// Interface is a model's inputs and outputs.
type Interface struct {
	Inputs, Outputs []Port
}

// ReadInterface reads a model's inputs and outputs from its ONNX bytes
// without the runtime: the graph's inputs, less those an initializer of
// the same name provides (the runtime treats them as overridable
// constants, not inputs), and its outputs. It is safe on hostile bytes:
// it reads only what the bytes hold, and what it returns is bounded by
// their length.
func ReadInterface(onnx []byte) (*Interface, error) {
	graph, err := field(onnx, modelGraph)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	if graph == nil {
		return nil, errors.New("read model: no graph (is this an ONNX model?)")
	}
	var ins, outs []Port
	initialized := map[string]bool{}
	err = walk(graph, func(num protowire.Number, v []byte) error {
		switch num {
		case graphInitializer:
			name, err := field(v, tensorName)
			if err != nil {
				return fmt.Errorf("initializer: %w", err)
			}
			initialized[string(name)] = true
		case graphInput, graphOutput:
			p, err := readPort(v)
			if err != nil {
				return err
			}
			if num == graphInput {
				ins = append(ins, p)
			} else {
				outs = append(outs, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read graph: %w", err)
	}
	it := &Interface{Outputs: outs}
	for _, p := range ins {
		if !initialized[p.Name] {
			it.Inputs = append(it.Inputs, p)
		}
	}
	return it, nil
}

// readPort reads a ValueInfoProto.
func readPort(b []byte) (Port, error) {
	var p Port
	name, err := field(b, valueName)
	if err != nil {
		return p, err
	}
	p.Name = string(name)
	typ, err := field(b, valueType)
	if err != nil || typ == nil {
		return p, err
	}
	if err := readType(typ, &p, 0); err != nil {
		return p, fmt.Errorf("%q: %w", p.Name, err)
	}
	return p, nil
}

// readTensorType reads a TypeProto.Tensor: its element type and shape.
func readTensorType(b []byte, p *Port) error {
	return protowalk.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == tensorTypeElem && typ == protowire.VarintType:
			p.Type = DataType(int32(n))
		case num == tensorTypeShape && typ == protowire.BytesType:
			p.Shape = []int64{}
			return walk(v, func(num protowire.Number, dim []byte) error {
				if num != shapeDim {
					return nil
				}
				d := int64(-1)
				err := protowalk.Fields(dim, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
					if num == dimValue && typ == protowire.VarintType && int64(n) >= 0 {
						d = int64(n)
					}
					return nil
				})
				p.Shape = append(p.Shape, d)
				return err
			})
		}
		return nil
	})
}

// field returns the last occurrence of length-delimited field num in a
// message, or nil when it has none.
func field(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	err := walk(b, func(n protowire.Number, v []byte) error {
		if n == num {
			out = v
		}
		return nil
	})
	return out, err
}

// walk calls fn with every length-delimited field of a message.
func walk(b []byte, fn func(protowire.Number, []byte) error) error {
	return protowalk.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ == protowire.BytesType {
			return fn(num, v)
		}
		return nil
	})
}
