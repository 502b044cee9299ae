package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"

	"github.com/infer-serving/infer/pkg/onnxgraph"
)

// The graph's interface read from the file's bytes is the runtime's own
// view of it, for every model the project ships.
func TestInterfaceFromBytesMatchesTheRuntime(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../testdata/models/*/*/model.onnx", "../../testdata/variants/*.onnx", "../../testdata/faults/*.onnx"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 15 {
		t.Fatalf("found %d models", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "slow-load.onnx") {
			continue // the runtime's reader folds its constants for seconds
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		it, err := onnxgraph.ReadInterface(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range []struct {
			what  string
			infos []ort.InputOutputInfo
			ports []onnxgraph.Port
		}{{"inputs", ins, it.Inputs}, {"outputs", outs, it.Outputs}} {
			want, werr := specsFromGraph(c.infos)
			got, gerr := specsFromPorts(c.ports)
			if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: from the bytes %v (%v), the runtime says %v (%v)", f, c.what, got, gerr, want, werr)
			}
		}
	}
}

// Bytes that are not a model are refused with a reason, never a panic.
func TestInterfaceOfGarbageIsAnError(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not a model"), {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f}, {0x3a, 0x02, 0x5a, 0x05}} {
		if _, err := onnxgraph.ReadInterface(b); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}

// specsFromGraph converts ONNX Runtime's view of a graph's inputs or
// outputs. Only tensors of the protocol's types are supported.
func specsFromGraph(infos []ort.InputOutputInfo) ([]TensorSpec, error) {
	specs := make([]TensorSpec, len(infos))
	for i, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%q is a %s, only tensors are supported", info.Name, info.OrtValueType)
		}
		dt, ok := protocolType(info.DataType)
		if !ok {
			return nil, fmt.Errorf("%q has element type %s, which the protocol cannot carry", info.Name, info.DataType)
		}
		if dt == tensor.Bytes {
			return nil, fmt.Errorf("%q is a string tensor; string inputs and outputs are not supported by the runner yet", info.Name)
		}
		shape := make([]int64, len(info.Dimensions))
		for j, d := range info.Dimensions {
			if d < 0 {
				d = -1
			}
			shape[j] = d
		}
		specs[i] = TensorSpec{Name: info.Name, DataType: dt, Shape: shape}
	}
	return specs, nil
}
