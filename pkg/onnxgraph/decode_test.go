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
	for _, file := range append(files, more...) {
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
