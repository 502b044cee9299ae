// Package classifiertest knows what testdata/variants/classifier.onnx
// answers, for tests that serve it: a three-class logistic regression over
// four features, as skl2onnx converts it with its ZipMap. Its weights are
// the ones testdata/gen writes into the file.
package classifiertest

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"

	"github.com/infer-serving/infer/pkg/tensor"
)

// The model's weights, [classes][features] and [classes].
var (
	coefficients = [3][4]float64{
		{1.5, -0.5, 0.25, 0},
		{-1, 1, 0, 0.5},
		{0, -0.25, -1, 1},
	}
	intercepts = [3]float64{0.1, -0.2, 0.05}
)

// Names of the model's input and outputs.
const (
	Input         = "float_input"
	Labels        = "output_label"
	Probabilities = "output_probability"
)

// Classify returns the label and the class probabilities the model gives
// one row of four features: the softmax of its linear scores.
func Classify(x []float32) (int64, [3]float64) {
	var p [3]float64
	var sum float64
	label := int64(0)
	for c := range p {
		s := intercepts[c]
		for f, w := range coefficients[c] {
			s += w * float64(x[f])
		}
		p[c] = math.Exp(s)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
		if p[c] > p[label] {
			label = int64(c)
		}
	}
	return label, p
}

// Features returns rows of four features, row r made from start+r, so
// that different requests' rows differ and the classes vary.
func Features(start, rows int) []float32 {
	x := make([]float32, 4*rows)
	for r := range rows {
		v := float32(start + r)
		copy(x[4*r:], []float32{v*0.5 - 1, 1 - v*0.25, v*0.125 - 0.5, v*0.3 - 2})
	}
	return x
}

// Request returns the model's input tensor for rows of x.
func Request(x []float32) tensor.Tensor {
	return tensor.New(Input, []int64{int64(len(x) / 4), 4}, x)
}

// element matches one row's probabilities as served: a compact JSON
// object, its keys the classes in the runtime's order.
var element = regexp.MustCompile(`^\{"0":[^,{}]+,"1":[^,{}]+,"2":[^,{}]+\}$`)

// Check checks the model's outputs for rows of x: the labels, INT64 [N],
// then the probabilities, BYTES [N] of one JSON object a row, each within
// 1e-6 of Classify's.
func Check(x []float32, outs []tensor.Tensor) error {
	rows := int64(len(x) / 4)
	if len(outs) != 2 || outs[0].Name != Labels || outs[1].Name != Probabilities {
		return fmt.Errorf("outputs %+v, want %s and %s", outs, Labels, Probabilities)
	}
	labels, err := tensor.Values[int64](outs[0])
	if err != nil || !slices.Equal(outs[0].Shape, []int64{rows}) {
		return fmt.Errorf("labels: shape %v (%v), want [%d]", outs[0].Shape, err, rows)
	}
	probs, err := tensor.BytesValues(outs[1])
	if err != nil || !slices.Equal(outs[1].Shape, []int64{rows}) || int64(len(probs)) != rows {
		return fmt.Errorf("probabilities: %s shape %v (%v), want BYTES [%d]", outs[1].DataType, outs[1].Shape, err, rows)
	}
	for r := range rows {
		label, want := Classify(x[4*r : 4*r+4])
		if labels[r] != label {
			return fmt.Errorf("row %d: label %d, want %d", r, labels[r], label)
		}
		if !element.Match(probs[r]) {
			return fmt.Errorf("row %d: probabilities %s, want a JSON object of classes 0, 1, 2", r, probs[r])
		}
		var got map[string]float64
		if err := json.Unmarshal(probs[r], &got); err != nil {
			return fmt.Errorf("row %d: %w", r, err)
		}
		for c, p := range want {
			if d := math.Abs(got[strconv.Itoa(c)] - p); d > 1e-6 {
				return fmt.Errorf("row %d: probabilities %s, want %v", r, probs[r], want)
			}
		}
	}
	return nil
}
