package deploy

import (
	"fmt"
	"math"

	"github.com/infer-serving/infer/pkg/tensor"
)

// Drift compares two answers to the same request, output by output.
type Drift struct {
	// MaxAbsDiff is the largest absolute difference between corresponding
	// elements of any output (non-float outputs: 0 if equal, else 1).
	MaxAbsDiff float64
	// Cosine is the lowest cosine similarity of any float output, row by
	// row where the output has rows (1 for identical directions).
	Cosine float64
	// Top1, for classifier-shaped outputs ([rows, classes>1]), is the
	// fraction of rows whose highest class agrees; -1 when there is none.
	Top1 float64
}

// Compare measures how far answer b is from answer a. Outputs are matched
// by name; a missing output or a shape or type change is an error, not a
// drift figure.
func Compare(a, b []tensor.Tensor) (Drift, error) {
	d := Drift{Cosine: 1, Top1: -1}
	byName := make(map[string]tensor.Tensor, len(b))
	for _, t := range b {
		byName[t.Name] = t
	}
	top1, rowsSeen := 0.0, 0
	for _, x := range a {
		y, ok := byName[x.Name]
		if !ok {
			return d, fmt.Errorf("output %q missing from the second answer", x.Name)
		}
		if x.DataType != y.DataType || fmt.Sprint(x.Shape) != fmt.Sprint(y.Shape) {
			return d, fmt.Errorf("output %q: %s %v against %s %v", x.Name, x.DataType, x.Shape, y.DataType, y.Shape)
		}
		xv, ok1 := floats(x)
		yv, ok2 := floats(y)
		if !ok1 || !ok2 {
			if string(x.Data) != string(y.Data) {
				d.MaxAbsDiff = math.Max(d.MaxAbsDiff, 1)
			}
			continue
		}
		for i := range xv {
			d.MaxAbsDiff = math.Max(d.MaxAbsDiff, math.Abs(xv[i]-yv[i]))
		}
		rows, cols := 1, len(xv)
		if len(x.Shape) == 2 && x.Shape[0] > 0 {
			rows, cols = int(x.Shape[0]), int(x.Shape[1])
		}
		for r := range rows {
			xr, yr := xv[r*cols:(r+1)*cols], yv[r*cols:(r+1)*cols]
			d.Cosine = math.Min(d.Cosine, cosine(xr, yr))
			if len(x.Shape) == 2 && cols > 1 {
				rowsSeen++
				if argmax(xr) == argmax(yr) {
					top1++
				}
			}
		}
	}
	if rowsSeen > 0 {
		d.Top1 = top1 / float64(rowsSeen)
	}
	return d, nil
}

// floats decodes a floating-point tensor's elements.
func floats(t tensor.Tensor) ([]float64, bool) {
	var v []float32
	var err error
	switch t.DataType {
	case tensor.FP64:
		v, err := tensor.Values[float64](t)
		return v, err == nil
	case tensor.FP32:
		v, err = tensor.Values[float32](t)
	case tensor.FP16:
		v, err = tensor.FP16Values(t)
	default:
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out, true
}

func cosine(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 && nb == 0 {
		return 1
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
