package main

import (
	g "github.com/infer-serving/infer/pkg/onnxgraph"
)

// Variants for the quality monitor's tests.

// tabular: FP32 features [batch,8] -> softmax probabilities [batch,3] of
// logits (s−1, −s−1, 0) with s = features[0] + features[1]: class 0 when
// s > 1, class 1 when s < −1, else class 2. The other six features do not
// move the outputs, so a shift in one of them is an input drift alone;
// making features 0 and 1 correlated keeps every input's distribution and
// changes the classes' frequencies, an output drift alone.
func tabular() *g.Model {
	b := g.NewBuilder("tabular")
	x := b.Input("features", g.Float, g.Symbolic("batch"), g.Fixed(8))
	w := make([]float32, 8*3)
	w[0], w[1] = 1, -1 // feature 0: +s to class 0, −s to class 1
	w[3], w[4] = 1, -1 // feature 1
	wt := b.Init(g.Float32Tensor("fc.weight", []int64{8, 3}, w))
	bias := b.Init(g.Float32Tensor("fc.bias", []int64{3}, []float32{-1, -1, 0}))
	logits := b.Op("Add", []string{b.Op("MatMul", []string{x, wt}), bias})
	b.OpNamed("probabilities", "Softmax", []string{logits}, g.AttrInt("axis", -1))
	b.Output("probabilities", g.Float, g.Symbolic("batch"), g.Fixed(3))
	return model(b, "8 features, 3 classes decided by the sum of the first two; for the quality monitor's tests.")
}

// mlpBiased is mlp with 3 added to class 3's logit: the same inputs, the
// same cost, and an output distribution moved towards one class, for the
// rollout test a drift criterion must roll back alone.
func mlpBiased() *g.Model {
	r := &rng{s: 1} // mlp's seed: the same weights
	b := g.NewBuilder("mlp-biased")
	x := b.Input("image", g.Float, g.Symbolic("batch"), g.Fixed(784))
	w1 := b.Init(r.glorot("fc1.weight", 784, 256))
	b1 := b.Init(g.Float32Tensor("fc1.bias", []int64{256}, r.uniform(256, 0.05)))
	w2 := b.Init(r.glorot("fc2.weight", 256, 10))
	bias := r.uniform(10, 0.05)
	bias[3] += 3
	b2 := b.Init(g.Float32Tensor("fc2.bias", []int64{10}, bias))
	h := b.Op("Relu", []string{b.Op("Add", []string{b.Op("MatMul", []string{x, w1}), b1})})
	logits := b.Op("Add", []string{b.Op("MatMul", []string{h, w2}), b2})
	b.OpNamed("probabilities", "Softmax", []string{logits}, g.AttrInt("axis", -1))
	b.Output("probabilities", g.Float, g.Symbolic("batch"), g.Fixed(10))
	return model(b, "mlp with class 3's logit raised by 3: outputs biased towards one class, for rollout tests.")
}
