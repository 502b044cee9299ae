package main

import (
	g "github.com/infer-serving/infer/pkg/onnxgraph"
)

// Models whose outputs are not all tensors: ONNX sequences and maps, as
// converters of classical models write them.

// The classifier's weights, [classes][features] and [classes];
// pkg/internal/classifiertest computes from the same numbers what the
// model must answer.
var (
	classifierCoefficients = [3][4]float32{
		{1.5, -0.5, 0.25, 0},
		{-1, 1, 0, 0.5},
		{0, -0.25, -1, 1},
	}
	classifierIntercepts = [3]float32{0.1, -0.2, 0.05}
)

// classifier: a three-class logistic regression over four features, laid
// out node for node as skl2onnx converts scikit-learn's
// LogisticRegression with its ZipMap: float_input FP32 [N,4] ->
// LinearClassifier (softmax) -> Normalizer (L1) -> ZipMap, giving
// output_label INT64 [N] and output_probability, a sequence of N maps
// from class (int64) to probability (float).
func classifier() *g.Model {
	b := g.NewBuilder("classifier")
	n := g.Symbolic("N")
	x := b.Input("float_input", g.Float, n, g.Fixed(4))
	var coef []float32
	for _, row := range classifierCoefficients {
		coef = append(coef, row[:]...)
	}
	b.OpIn(g.DomainML, "LinearClassifier", []string{x}, []string{"label", "probability_tensor"},
		g.AttrInts("classlabels_ints", 0, 1, 2),
		g.AttrFloats("coefficients", coef...),
		g.AttrFloats("intercepts", classifierIntercepts[:]...),
		g.AttrInt("multi_class", 1),
		g.AttrString("post_transform", "SOFTMAX"))
	b.OpIn(g.DomainML, "Normalizer", []string{"probability_tensor"}, []string{"probabilities"}, g.AttrString("norm", "L1"))
	b.OpNamed("output_label", "Cast", []string{"label"}, g.AttrInt("to", int64(g.Int64)))
	b.OpIn(g.DomainML, "ZipMap", []string{"probabilities"}, []string{"output_probability"}, g.AttrInts("classlabels_int64s", 0, 1, 2))
	b.Output("output_label", g.Int64, n)
	b.OutputOf("output_probability", g.SequenceOf(g.MapOf(g.Int64, g.TensorType(g.Float))))
	m := model(b, "A three-class logistic regression as skl2onnx converts it: labels, and a sequence of class->probability maps (ZipMap).")
	m.Imports = []g.OpsetImport{{Domain: g.DomainML, Version: 3}}
	return m
}

// sequenceOut: doubled = 2x for FP32 x [N,4], and rows, x split into its
// N rows as a sequence of tensors: an output no protocol tensor carries,
// beside one that is served.
func sequenceOut() *g.Model {
	b := g.NewBuilder("sequence-out")
	n := g.Symbolic("N")
	x := b.Input("x", g.Float, n, g.Fixed(4))
	b.OpNamed("doubled", "Mul", []string{x, b.Init(scalarF("const.two", 2))})
	b.OpNamed("rows", "SplitToSequence", []string{x}, g.AttrInt("axis", 0), g.AttrInt("keepdims", 0))
	b.Output("doubled", g.Float, n, g.Fixed(4))
	b.OutputOf("rows", g.SequenceOf(g.TensorType(g.Float, g.Fixed(4))))
	return model(b, "doubled = 2x, and x's rows as a sequence of tensors: an output that is not a tensor.")
}
