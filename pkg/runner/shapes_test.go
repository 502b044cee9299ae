package runner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

// A model whose output's first dimension is not the batch (repeat-rows:
// [rows,4] -> [2*rows,4]) is refused at load as a batched model, with the
// reason and the way out, and served unbatched with max_batch_size: 0.
func TestOutputRowsThatAreNotTheBatch(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(bundled, "..", "variants", "repeat-rows.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, isolation := range []string{IsolationNone, IsolationProcess} {
		_, err = LoadModel("repeat-rows", 1, data, Config{Isolation: isolation}, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), "row per input row") || !strings.Contains(err.Error(), "max_batch_size: 0") {
			t.Fatalf("isolation %s: loaded as a batched model: err %v", isolation, err)
		}
	}

	m, err := LoadModel("repeat-rows", 1, data, Config{MaxBatchSize: intp(0)}, LoadOptions{})
	if err != nil {
		t.Fatalf("max_batch_size 0: %v", err)
	}
	t.Cleanup(m.Close)
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	resp, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{tensor.New("x", []int64{3, 4}, x)}})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := tensor.Values[float32](resp.Outputs[0])
	if !slices.Equal(resp.Outputs[0].Shape, []int64{6, 4}) || !slices.Equal(y, append(slices.Clone(x), x...)) || resp.Timing.BatchSize != 1 {
		t.Fatalf("shape %v values %v batch %d, want [6 4], x twice, alone", resp.Outputs[0].Shape, y, resp.Timing.BatchSize)
	}
}
