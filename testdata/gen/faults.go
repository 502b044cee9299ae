package main

import (
	g "github.com/infer-serving/infer/pkg/onnxgraph"
)

// The fault models: each is valid ONNX that the runtime loads, and each
// goes wrong in a way that must never take the server down. They live in
// testdata/faults, one .onnx file each, for the containment tests.

// intDiv: quotient = a / b on INT32 [batch, 4]. A zero in b is an integer
// division by zero inside the runtime's kernel: SIGFPE, which ends the
// process it runs in.
func intDiv() *g.Model {
	b := g.NewBuilder("int-div")
	x := b.Input("a", g.Int32, g.Symbolic("batch"), g.Fixed(4))
	y := b.Input("b", g.Int32, g.Symbolic("batch"), g.Fixed(4))
	b.OpNamed("quotient", "Div", []string{x, y})
	b.Output("quotient", g.Int32, g.Symbolic("batch"), g.Fixed(4))
	return model(b, "quotient = a / b on INT32: a zero divisor raises SIGFPE in the runtime. For containment tests.")
}

// scalar: doubled = 2 * x on FP32 scalars (rank 0): inputs and outputs
// with no dimensions, end to end.
func scalar() *g.Model {
	b := g.NewBuilder("scalar")
	x := b.Input("x", g.Float)
	b.OpNamed("doubled", "Mul", []string{x, b.Init(scalarF("const.two", 2))})
	b.Output("doubled", g.Float)
	return model(b, "doubled = 2 * x on FP32 scalars: rank-0 inputs and outputs.")
}

// repeatRows: y = x stacked on itself, FP32 [rows,4] -> [2*rows,4]. Both
// first dimensions are dynamic, but the output's is not the batch: it can
// be served only unbatched (max_batch_size: 0).
func repeatRows() *g.Model {
	b := g.NewBuilder("repeat-rows")
	x := b.Input("x", g.Float, g.Symbolic("rows"), g.Fixed(4))
	b.OpNamed("y", "Concat", []string{x, x}, g.AttrInt("axis", 0))
	b.Output("y", g.Float, g.Symbolic("rows2"), g.Fixed(4))
	return model(b, "y = x stacked on itself, [rows,4] -> [2*rows,4]: its output rows are not its input rows.")
}

// noInputs: a graph of constants and no inputs; every call returns
// values = [1, 2, 3].
func noInputs() *g.Model {
	b := g.NewBuilder("no-inputs")
	b.OpNamed("values", "Constant", nil, g.AttrTensor("value", g.Float32Tensor("const.values", []int64{3}, []float32{1, 2, 3})))
	b.Output("values", g.Float, g.Fixed(3))
	return model(b, "No inputs: returns the constant [1, 2, 3]. For containment tests.")
}

// expand: filled = Expand(value, shape), value FP32 [1] and shape INT64
// [2]: the client chooses how much the runtime allocates, so a memory
// limit must hold it.
func expand() *g.Model {
	b := g.NewBuilder("expand")
	v := b.Input("value", g.Float, g.Fixed(1))
	s := b.Input("shape", g.Int64, g.Fixed(2))
	b.OpNamed("filled", "Expand", []string{v, s})
	b.Output("filled", g.Float, g.Symbolic("rows"), g.Symbolic("columns"))
	return model(b, "filled = Expand(value, shape): allocates what the request's shape asks. For memory-limit tests.")
}

// slowLoad: y = x + sum of a chain of constant matrix products, which the
// runtime's constant folding computes while it creates the session: a
// load that takes seconds, for load-timeout tests.
func slowLoad(n, chain int64) *g.Model {
	b := g.NewBuilder("slow-load")
	x := b.Input("x", g.Float, g.Fixed(1))
	m := b.Op("ConstantOfShape", []string{b.Init(ints("const.shape", n, n))},
		g.AttrTensor("value", g.Float32Tensor("const.fill", []int64{1}, []float32{1.0 / float32(n)})))
	for range chain {
		m = b.Op("MatMul", []string{m, m})
	}
	total := b.Op("ReduceSum", []string{m}, g.AttrInt("keepdims", 0))
	b.OpNamed("y", "Add", []string{x, b.Op("Reshape", []string{total, b.Init(ints("const.one", 1))})})
	b.Output("y", g.Float, g.Fixed(1))
	return model(b, "y = x + a constant computed at load through a chain of matrix products: a slow load. For load-timeout tests.")
}
