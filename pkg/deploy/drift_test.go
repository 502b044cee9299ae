package deploy

import (
	"math"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/tensor"
)

func TestCompare(t *testing.T) {
	probs := func(v ...float32) []tensor.Tensor {
		return []tensor.Tensor{tensor.New("p", []int64{2, 3}, v)}
	}
	same, err := Compare(probs(0.1, 0.7, 0.2, 0.5, 0.3, 0.2), probs(0.1, 0.7, 0.2, 0.5, 0.3, 0.2))
	if err != nil || same.MaxAbsDiff != 0 || math.Abs(same.Cosine-1) > 1e-12 || same.Top1 != 1 {
		t.Fatalf("identical answers: %+v %v", same, err)
	}
	// Row 2's top class flips: max diff 0.3, half the rows agree.
	d, err := Compare(probs(0.1, 0.7, 0.2, 0.5, 0.3, 0.2), probs(0.1, 0.7, 0.2, 0.2, 0.6, 0.2))
	if err != nil || math.Abs(d.MaxAbsDiff-0.3) > 1e-6 || d.Top1 != 0.5 || d.Cosine >= 0.95 {
		t.Fatalf("drifted answer: %+v %v", d, err)
	}
	// Orthogonal rows: cosine 0, and their top classes disagree.
	e, _ := Compare([]tensor.Tensor{tensor.New("e", []int64{1, 2}, []float32{1, 0})}, []tensor.Tensor{tensor.New("e", []int64{1, 2}, []float32{0, 1})})
	if math.Abs(e.Cosine) > 1e-12 || e.Top1 != 0 {
		t.Fatalf("orthogonal rows: %+v", e)
	}
	// A flat output has no rows of classes: no top-1 figure.
	f, _ := Compare([]tensor.Tensor{tensor.New("f", []int64{3}, []float32{1, 2, 3})}, []tensor.Tensor{tensor.New("f", []int64{3}, []float32{1, 2, 3})})
	if f.Top1 != -1 {
		t.Fatalf("flat output: %+v", f)
	}
	ints, _ := Compare([]tensor.Tensor{tensor.New("i", []int64{2}, []int64{1, 2})}, []tensor.Tensor{tensor.New("i", []int64{2}, []int64{1, 3})})
	if ints.MaxAbsDiff != 1 {
		t.Fatalf("integer outputs that differ: %+v", ints)
	}
	if _, err := Compare(probs(1, 2, 3, 4, 5, 6), []tensor.Tensor{tensor.New("p", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})}); err == nil || !strings.Contains(err.Error(), `"p"`) {
		t.Fatalf("shape change: %v", err)
	}
	if _, err := Compare(probs(1, 2, 3, 4, 5, 6), nil); err == nil {
		t.Fatal("missing output accepted")
	}
}
