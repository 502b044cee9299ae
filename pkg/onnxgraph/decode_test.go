package onnxgraph

import (
	"os"
	"path/filepath"
	"testing"
)

// ReadInterface reads what any bytes hold without panicking, and what it
// returns is bounded by their length: a model file is outside input.
func FuzzReadInterface(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "faults", "*.onnx"))
	more, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "models", "*", "1", "model.onnx"))
	files = append(files, more...)
	files = append(files, filepath.Join("..", "..", "testdata", "variants", "classifier.onnx")) // nested types
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil && len(data) < 1<<20 {
			f.Add(data)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x3a, 0x02, 0x5a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		it, err := ReadInterface(data)
		if err != nil {
			return
		}
		ports, dims := 0, 0
		for _, group := range [][]Port{it.Inputs, it.Outputs} {
			for _, p := range group {
				ports++
				dims += len(p.Shape)
				if len(p.Name) > len(data) {
					t.Fatalf("a name of %d bytes from %d bytes", len(p.Name), len(data))
				}
				for _, d := range p.Shape {
					if d < -1 {
						t.Fatalf("dimension %d in %v", d, p.Shape)
					}
				}
			}
		}
		// Each port and each dimension takes at least two bytes of input.
		if 2*(ports+dims) > len(data)+2 {
			t.Fatalf("%d ports and %d dimensions from %d bytes", ports, dims, len(data))
		}
	})
}

// Models the generator writes read back as they were written.
func TestReadInterfaceReadsWhatEncodeWrites(t *testing.T) {
	b := NewBuilder("g")
	x := b.Input("x", Float, Symbolic("batch"), Fixed(3))
	b.Init(Float32Tensor("w", []int64{3}, []float32{1, 2, 3}))
	b.Input("w", Float, Fixed(3)) // an input an initializer provides
	b.OpNamed("y", "Mul", []string{x, "w"})
	b.Output("y", Double, Symbolic("batch"), Fixed(3))
	it, err := ReadInterface((&Model{Graph: b.Graph}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Inputs) != 1 || it.Inputs[0].Name != "x" || it.Inputs[0].Kind != KindTensor || it.Inputs[0].Type != Float ||
		len(it.Inputs[0].Shape) != 2 || it.Inputs[0].Shape[0] != -1 || it.Inputs[0].Shape[1] != 3 {
		t.Errorf("inputs %+v", it.Inputs)
	}
	if len(it.Outputs) != 1 || it.Outputs[0].Name != "y" || it.Outputs[0].Type != Double {
		t.Errorf("outputs %+v", it.Outputs)
	}
}

// A sequence of maps, as a converted classifier's ZipMap declares it,
// reads back with every level of its type, and spells as ONNX spells it.
func TestReadInterfaceReadsNestedTypes(t *testing.T) {
	b := NewBuilder("g")
	b.Input("x", Float, Symbolic("N"), Fixed(4))
	b.OutputOf("probabilities", SequenceOf(MapOf(Int64, TensorType(Float))))
	b.OutputOf("rows", SequenceOf(TensorType(Float, Fixed(4))))
	b.OutputOf("names", MapOf(String, TensorType(Double)))
	it, err := ReadInterface((&Model{Graph: b.Graph}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Outputs) != 3 {
		t.Fatalf("outputs %+v", it.Outputs)
	}
	p := it.Outputs[0]
	if p.Kind != KindSequence || p.Elem == nil || p.Elem.Kind != KindMap || p.Elem.Key != Int64 ||
		p.Elem.Elem == nil || p.Elem.Elem.Kind != KindTensor || p.Elem.Elem.Type != Float {
		t.Errorf("probabilities: %+v", p)
	}
	for i, want := range []string{"seq(map(int64,tensor(float)))", "seq(tensor(float))", "map(string,tensor(double))"} {
		if got := it.Outputs[i].TypeString(); got != want {
			t.Errorf("output %d: type %q, want %q", i, got, want)
		}
	}
	if rows := it.Outputs[1].Elem; rows == nil || len(rows.Shape) != 1 || rows.Shape[0] != 4 {
		t.Errorf("rows' element: %+v", rows)
	}
}

// A type nested past what ReadInterface follows is read to that depth and
// no further.
func TestReadInterfaceBoundsNesting(t *testing.T) {
	typ := TensorType(Float)
	for range 3 * maxTypeDepth {
		typ = SequenceOf(typ)
	}
	b := NewBuilder("g")
	b.OutputOf("deep", typ)
	it, err := ReadInterface((&Model{Graph: b.Graph}).Encode())
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for p := &it.Outputs[0]; p.Elem != nil; p = p.Elem {
		depth++
	}
	if depth != maxTypeDepth {
		t.Errorf("read %d levels, want %d", depth, maxTypeDepth)
	}
}
