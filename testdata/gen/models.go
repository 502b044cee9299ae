package main

import (
	"fmt"
	"math"

	g "github.com/infer-serving/infer/pkg/onnxgraph"
)

// rng is splitmix64: tiny, fast and fully specified, so the weights never
// change with the Go version.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns n values uniform in [-limit, limit).
func (r *rng) uniform(n int, limit float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		u := float64(r.next()>>11) / (1 << 53)
		v[i] = float32((2*u - 1) * limit)
	}
	return v
}

// glorot returns a [in,out] weight matrix with Xavier/Glorot uniform values.
func (r *rng) glorot(name string, in, out int64) g.Tensor {
	return g.Float32Tensor(name, []int64{in, out}, r.uniform(int(in*out), math.Sqrt(6/float64(in+out))))
}

func fill(n int64, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func scalarF(name string, v float32) g.Tensor { return g.Float32Tensor(name, nil, []float32{v}) }
func ints(name string, v ...int64) g.Tensor   { return g.Int64Tensor(name, []int64{int64(len(v))}, v) }

func model(b *g.Builder, doc string) *g.Model {
	return &g.Model{
		Graph:        b.Graph,
		ProducerName: "infer-testdata-gen",
		ProducerVer:  "1",
		DocString:    doc,
		ModelVersion: 1,
	}
}

// mlp: an MNIST-shaped classifier, FP32 [batch,784] -> softmax [batch,10].
func mlp() *g.Model {
	r := &rng{s: 1}
	b := g.NewBuilder("mlp")
	x := b.Input("image", g.Float, g.Symbolic("batch"), g.Fixed(784))
	w1 := b.Init(r.glorot("fc1.weight", 784, 256))
	b1 := b.Init(g.Float32Tensor("fc1.bias", []int64{256}, r.uniform(256, 0.05)))
	w2 := b.Init(r.glorot("fc2.weight", 256, 10))
	b2 := b.Init(g.Float32Tensor("fc2.bias", []int64{10}, r.uniform(10, 0.05)))
	h := b.Op("Relu", []string{b.Op("Add", []string{b.Op("MatMul", []string{x, w1}), b1})})
	logits := b.Op("Add", []string{b.Op("MatMul", []string{h, w2}), b2})
	b.OpNamed("probabilities", "Softmax", []string{logits}, g.AttrInt("axis", -1))
	b.Output("probabilities", g.Float, g.Symbolic("batch"), g.Fixed(10))
	return model(b, "784-256-10 multilayer perceptron with ReLU and softmax; deterministic weights.")
}

// mlpHeavy is mlp with its first layer computed runs times over: the same
// answers (to float rounding) at a cost that grows with runs. Each run
// reads its own copy of the image, made by scaling by 2 and back by 1/2
// (exact in floating point), so graph optimizers cannot merge the runs as
// common subexpressions; Max of the equal results keeps every run live.
// Variants for rollout tests, where a version three times slower than the
// stable one must be rolled back: their latency is the model's compute,
// not the noise of a loaded machine. They live in testdata/variants, not in
// the served bundle.
func mlpHeavy(runs int) *g.Model {
	r := &rng{s: 1} // mlp's seed: the same weights
	b := g.NewBuilder(fmt.Sprintf("mlp-heavy-%d", runs))
	x := b.Input("image", g.Float, g.Symbolic("batch"), g.Fixed(784))
	w1 := b.Init(r.glorot("fc1.weight", 784, 256))
	b1 := b.Init(g.Float32Tensor("fc1.bias", []int64{256}, r.uniform(256, 0.05)))
	w2 := b.Init(r.glorot("fc2.weight", 256, 10))
	b2 := b.Init(g.Float32Tensor("fc2.bias", []int64{10}, r.uniform(10, 0.05)))
	two, half := make([]float32, 784), make([]float32, 784)
	for i := range two {
		two[i], half[i] = 2, 0.5
	}
	tw, hf := b.Init(g.Float32Tensor("const.two", []int64{784}, two)), b.Init(g.Float32Tensor("const.half", []int64{784}, half))
	copyOf, layers := x, make([]string, runs)
	for i := range layers {
		copyOf = b.Op("Mul", []string{b.Op("Mul", []string{copyOf, tw}), hf})
		layers[i] = b.Op("MatMul", []string{copyOf, w1})
	}
	h := b.Op("Relu", []string{b.Op("Add", []string{b.Op("Max", layers), b1})})
	logits := b.Op("Add", []string{b.Op("MatMul", []string{h, w2}), b2})
	b.OpNamed("probabilities", "Softmax", []string{logits}, g.AttrInt("axis", -1))
	b.Output("probabilities", g.Float, g.Symbolic("batch"), g.Fixed(10))
	return model(b, fmt.Sprintf("mlp with its first layer computed %d times over: the same answers at more cost, for rollout tests.", runs))
}

// Text encoder shape: a small BERT.
const (
	hidden    = 128
	heads     = 4
	headDim   = hidden / heads
	ffn       = 512
	layers    = 2
	maxSeqLen = 512
)

// textEncoder: a 2-layer BERT-like encoder with mean pooling and L2
// normalisation. INT64 input_ids and attention_mask [batch,seq] -> FP32
// embedding [batch,128].
func textEncoder(vocab int64) *g.Model {
	r := &rng{s: 2}
	b := g.NewBuilder("text-encoder")
	batch, seq := g.Symbolic("batch"), g.Symbolic("sequence")
	ids := b.Input("input_ids", g.Int64, batch, seq)
	mask := b.Input("attention_mask", g.Int64, batch, seq)

	wordEmb := b.Init(g.Float32Tensor("embeddings.word", []int64{vocab, hidden}, r.uniform(int(vocab*hidden), 0.1)))
	posEmb := b.Init(g.Float32Tensor("embeddings.position", []int64{maxSeqLen, hidden}, r.uniform(maxSeqLen*hidden, 0.02)))
	zero := b.Init(g.Int64Tensor("const.zero", nil, []int64{0}))
	one := b.Init(g.Int64Tensor("const.one", nil, []int64{1}))

	layerNorm := func(x, name string) string {
		gamma := b.Init(g.Float32Tensor(name+".gamma", []int64{hidden}, fill(hidden, 1)))
		beta := b.Init(g.Float32Tensor(name+".beta", []int64{hidden}, fill(hidden, 0)))
		return b.Op("LayerNormalization", []string{x, gamma, beta}, g.AttrInt("axis", -1), g.AttrFloat("epsilon", 1e-12))
	}
	linear := func(x, name string, in, out int64) string {
		w := b.Init(r.glorot(name+".weight", in, out))
		bias := b.Init(g.Float32Tensor(name+".bias", []int64{out}, fill(out, 0)))
		return b.Op("Add", []string{b.Op("MatMul", []string{x, w}), bias})
	}

	// Embeddings: word + position, positions 0..seq-1.
	seqLen := b.Op("Gather", []string{b.Op("Shape", []string{ids}), one}, g.AttrInt("axis", 0))
	positions := b.Op("Range", []string{zero, seqLen, one})
	x := b.Op("Add", []string{
		b.Op("Gather", []string{wordEmb, ids}, g.AttrInt("axis", 0)),
		b.Op("Gather", []string{posEmb, positions}, g.AttrInt("axis", 0)),
	})
	x = layerNorm(x, "embeddings.norm")

	// Attention bias: 0 where attended, -10000 where masked, [batch,1,1,seq].
	maskF := b.Op("Cast", []string{mask}, g.AttrInt("to", int64(g.Float)))
	notMask := b.Op("Sub", []string{b.Init(scalarF("const.onef", 1)), maskF})
	bias := b.Op("Mul", []string{notMask, b.Init(scalarF("const.neg", -10000))})
	bias = b.Op("Unsqueeze", []string{bias, b.Init(ints("const.axes12", 1, 2))})

	splitShape := b.Init(ints("const.split_heads", 0, 0, heads, headDim))
	mergeShape := b.Init(ints("const.merge_heads", 0, 0, hidden))
	scale := b.Init(scalarF("const.scale", float32(1/math.Sqrt(headDim))))
	half := b.Init(scalarF("const.half", 0.5))
	onef := "const.onef"
	invSqrt2 := b.Init(scalarF("const.inv_sqrt2", float32(1/math.Sqrt2)))

	for l := range layers {
		p := "layer" + string(rune('0'+l))
		heads := func(v string, perm ...int64) string {
			return b.Op("Transpose", []string{b.Op("Reshape", []string{v, splitShape})}, g.AttrInts("perm", perm...))
		}
		q := heads(linear(x, p+".attention.query", hidden, hidden), 0, 2, 1, 3)
		k := heads(linear(x, p+".attention.key", hidden, hidden), 0, 2, 3, 1)
		v := heads(linear(x, p+".attention.value", hidden, hidden), 0, 2, 1, 3)
		scores := b.Op("Add", []string{b.Op("Mul", []string{b.Op("MatMul", []string{q, k}), scale}), bias})
		probs := b.Op("Softmax", []string{scores}, g.AttrInt("axis", -1))
		ctx := b.Op("Transpose", []string{b.Op("MatMul", []string{probs, v})}, g.AttrInts("perm", 0, 2, 1, 3))
		ctx = b.Op("Reshape", []string{ctx, mergeShape})
		x = layerNorm(b.Op("Add", []string{linear(ctx, p+".attention.output", hidden, hidden), x}), p+".attention.norm")

		// Feed-forward with exact (erf) GELU.
		h := linear(x, p+".ffn.in", hidden, ffn)
		erf := b.Op("Erf", []string{b.Op("Mul", []string{h, invSqrt2})})
		h = b.Op("Mul", []string{b.Op("Mul", []string{h, half}), b.Op("Add", []string{erf, onef})})
		x = layerNorm(b.Op("Add", []string{linear(h, p+".ffn.out", ffn, hidden), x}), p+".ffn.norm")
	}

	// Mean over attended tokens, then L2 normalisation.
	m := b.Op("Unsqueeze", []string{maskF, b.Init(ints("const.axes2", 2))})
	axis1 := b.Init(ints("const.axis1", 1))
	sum := b.Op("ReduceSum", []string{b.Op("Mul", []string{x, m}), axis1}, g.AttrInt("keepdims", 0))
	count := b.Op("ReduceSum", []string{maskF, axis1}, g.AttrInt("keepdims", 1))
	count = b.Op("Max", []string{count, b.Init(scalarF("const.eps", 1e-9))})
	mean := b.Op("Div", []string{sum, count})
	b.OpNamed("embedding", "LpNormalization", []string{mean}, g.AttrInt("axis", -1), g.AttrInt("p", 2))
	b.Output("embedding", g.Float, batch, g.Fixed(hidden))
	return model(b, "2-layer BERT-like sentence encoder (hidden 128, 4 heads), mean pooled and L2 normalised; deterministic weights; WordPiece vocabulary in vocab.txt.")
}

// multiIO: five inputs and outputs of different element types, batchable.
func multiIO() *g.Model {
	b := g.NewBuilder("multi-io")
	batch := g.Symbolic("batch")
	four := g.Fixed(4)
	ids := b.Input("ids", g.Int64, batch, four)
	flags := b.Input("flags", g.Bool, batch, four)
	halfs := b.Input("halfs", g.Float16, batch, four)
	wide := b.Input("wide", g.Double, batch, four)
	raw := b.Input("bytes", g.Uint8, batch, four)

	b.OpNamed("ids_doubled", "Mul", []string{ids, b.Init(g.Int64Tensor("const.two", nil, []int64{2}))})
	b.OpNamed("flags_negated", "Not", []string{flags})
	plus := b.Op("Add", []string{b.Op("Cast", []string{halfs}, g.AttrInt("to", int64(g.Float))), b.Init(scalarF("const.onef", 1))})
	b.OpNamed("halfs_plus_one", "Cast", []string{plus}, g.AttrInt("to", int64(g.Float16)))
	b.OpNamed("wide_sum", "ReduceSum", []string{wide, b.Init(ints("const.axis1", 1))}, g.AttrInt("keepdims", 1))
	asInt := b.Op("Cast", []string{raw}, g.AttrInt("to", int64(g.Int32)))
	inverted := b.Op("Sub", []string{b.Init(g.Tensor{Name: "const.255", Type: g.Int32, Raw: []byte{255, 0, 0, 0}}), asInt})
	b.OpNamed("bytes_inverted", "Cast", []string{inverted}, g.AttrInt("to", int64(g.Uint8)))

	b.Output("ids_doubled", g.Int64, batch, four)
	b.Output("flags_negated", g.Bool, batch, four)
	b.Output("halfs_plus_one", g.Float16, batch, four)
	b.Output("wide_sum", g.Double, batch, g.Fixed(1))
	b.Output("bytes_inverted", g.Uint8, batch, four)
	return model(b, "Element-wise functions over INT64, BOOL, FP16, FP64 and UINT8 tensors with a dynamic batch dimension.")
}

// allTypes: one input per non-string element type the protocol carries,
// each [batch,2], returned unchanged by Identity: for end-to-end tests of
// every datatype over every protocol.
func allTypes() *g.Model {
	b := g.NewBuilder("all-types")
	batch := g.Symbolic("batch")
	for _, t := range []struct {
		name string
		typ  g.DataType
	}{
		{"bool", g.Bool}, {"uint8", g.Uint8}, {"uint16", g.Uint16}, {"uint32", g.Uint32}, {"uint64", g.Uint64},
		{"int8", g.Int8}, {"int16", g.Int16}, {"int32", g.Int32}, {"int64", g.Int64},
		{"fp16", g.Float16}, {"bf16", g.BFloat}, {"fp32", g.Float}, {"fp64", g.Double},
	} {
		in := b.Input(t.name+"_in", t.typ, batch, g.Fixed(2))
		b.OpNamed(t.name+"_out", "Identity", []string{in})
		b.Output(t.name+"_out", t.typ, batch, g.Fixed(2))
	}
	return model(b, "Identity over every element type the protocol carries but BYTES, [batch,2] each.")
}

// fixedShape: FP32 [2,3] -> its transpose scaled by 10, [3,2]. Its first
// dimension is fixed, so it can never be batched.
func fixedShape() *g.Model {
	b := g.NewBuilder("fixed-shape")
	x := b.Input("matrix", g.Float, g.Fixed(2), g.Fixed(3))
	t := b.Op("Transpose", []string{x}, g.AttrInts("perm", 1, 0))
	b.OpNamed("transposed", "Mul", []string{t, b.Init(scalarF("const.ten", 10))})
	b.Output("transposed", g.Float, g.Fixed(3), g.Fixed(2))
	return model(b, "Transpose of a fixed [2,3] matrix, times ten; not batchable.")
}

// faulty: y = 2x for FP32 x [batch,4], unless a row is marked. Column 1
// at 1 or more fails the execution (a Gather out of its data's bounds: a
// runtime error, as a corrupt kernel or bad input would give); column 2
// at k (its floor) stalls it for k thousand iterations of an empty Loop
// (about 2 µs an iteration on a 2-core machine: k = 500 is a second). Unmarked inputs in [0,1) do neither. The marks
// act on the whole batch a marked row runs in, as a real poison request
// does.
func faulty() *g.Model {
	b := g.NewBuilder("faulty")
	x := b.Input("x", g.Float, g.Symbolic("batch"), g.Fixed(4))
	column := func(i int64) string {
		col := b.Op("Gather", []string{x, b.Init(g.Int64Tensor(fmt.Sprintf("const.col%d", i), nil, []int64{i}))}, g.AttrInt("axis", 1))
		return b.Op("ReduceMax", []string{col}, g.AttrInt("keepdims", 0))
	}
	// The failure: Gather from one element at the mark's index.
	idx := b.Op("Cast", []string{column(1)}, g.AttrInt("to", int64(g.Int64)))
	picked := b.Op("Gather", []string{b.Init(g.Float32Tensor("const.one_zero", []int64{1}, []float32{0})), idx}, g.AttrInt("axis", 0))
	// The stall: an empty Loop of floor(mark) * 1000 iterations.
	trips := b.Op("Cast", []string{b.Op("Mul", []string{b.Op("Floor", []string{column(2)}), b.Init(scalarF("const.thousand", 1000))})},
		g.AttrInt("to", int64(g.Int64)))
	body := g.NewBuilder("stall")
	body.Input("i", g.Int64)
	cond := body.Input("cond_in", g.Bool)
	v := body.Input("v_in", g.Float)
	body.OpNamed("cond_out", "Identity", []string{cond})
	body.OpNamed("v_out", "Add", []string{v, body.Init(scalarF("const.step", 1))})
	body.Output("cond_out", g.Bool)
	body.Output("v_out", g.Float)
	keepGoing := b.Init(g.Tensor{Name: "const.true", Type: g.Bool, Raw: []byte{1}})
	looped := b.Op("Loop", []string{trips, keepGoing, b.Init(scalarF("const.zero", 0))}, g.AttrGraph("body", body.Graph))
	// y = 2x + 0 * (picked + looped): the marks' work stays in the graph.
	noise := b.Op("Mul", []string{b.Op("Add", []string{picked, looped}), b.Init(scalarF("const.nothing", 0))})
	b.OpNamed("y", "Add", []string{b.Op("Mul", []string{x, b.Init(scalarF("const.two", 2))}), noise})
	b.Output("y", g.Float, g.Symbolic("batch"), g.Fixed(4))
	return model(b, "y = 2x, failing when a row's column 1 is 1 or more and stalling floor(column 2) thousand loop iterations: for fault tests.")
}

// Decoder shape: a small GPT.
const (
	gptHidden  = 128
	gptHeads   = 4
	gptHeadDim = gptHidden / gptHeads
	gptFFN     = 512
	gptLayers  = 2
	gptMaxPos  = 512
)

// tinyGPT: a 2-layer GPT-like decoder (pre-norm, learned positions, tied
// embeddings) with an explicit key/value cache, so that each step feeds
// only its new tokens:
//
//	input_ids, position_ids INT64 [batch, new]
//	attention_mask          INT64 [batch, past + new] (1: a real token)
//	past_key_N, past_value_N FP32 [batch, 4, past, 32] per layer N
//	-> logits FP32 [batch, vocab] (of each row's last new token)
//	   new_key_N, new_value_N FP32 [batch, 4, new, 32]
//
// New tokens attend to the unmasked past and, causally, to each other.
//
// With present, it returns the past with the new keys and values appended
// (present_key_N [batch, heads, past+new, head_dim]), as most exported
// decoders do, and attends over that; otherwise only the new ones
// (new_key_N [batch, heads, new, head_dim]), attending over the past where
// it lies. The two compute the same function.
func tinyGPT(vocab int64, present bool) *g.Model {
	r := &rng{s: 3}
	b := g.NewBuilder("tiny-gpt")
	batch, news, past, total := g.Symbolic("batch"), g.Symbolic("new"), g.Symbolic("past"), g.Symbolic("past_plus_new")
	ids := b.Input("input_ids", g.Int64, batch, news)
	pos := b.Input("position_ids", g.Int64, batch, news)
	mask := b.Input("attention_mask", g.Int64, batch, total)
	var pastK, pastV []string
	for l := range gptLayers {
		pastK = append(pastK, b.Input(fmt.Sprintf("past_key_%d", l), g.Float, batch, g.Fixed(gptHeads), past, g.Fixed(gptHeadDim)))
		pastV = append(pastV, b.Input(fmt.Sprintf("past_value_%d", l), g.Float, batch, g.Fixed(gptHeads), past, g.Fixed(gptHeadDim)))
	}

	wte := b.Init(g.Float32Tensor("wte", []int64{vocab, gptHidden}, r.uniform(int(vocab*gptHidden), 0.1)))
	wpe := b.Init(g.Float32Tensor("wpe", []int64{gptMaxPos, gptHidden}, r.uniform(gptMaxPos*gptHidden, 0.02)))
	zero := b.Init(g.Int64Tensor("const.zero", nil, []int64{0}))
	one := b.Init(g.Int64Tensor("const.one", nil, []int64{1}))
	layerNorm := func(x, name string) string {
		gamma := b.Init(g.Float32Tensor(name+".gamma", []int64{gptHidden}, fill(gptHidden, 1)))
		beta := b.Init(g.Float32Tensor(name+".beta", []int64{gptHidden}, fill(gptHidden, 0)))
		return b.Op("LayerNormalization", []string{x, gamma, beta}, g.AttrInt("axis", -1), g.AttrFloat("epsilon", 1e-5))
	}
	linear := func(x, name string, in, out int64) string {
		w := b.Init(r.glorot(name+".weight", in, out))
		bias := b.Init(g.Float32Tensor(name+".bias", []int64{out}, r.uniform(int(out), 0.02)))
		return b.Op("Add", []string{b.Op("MatMul", []string{x, w}), bias})
	}
	x := b.Op("Add", []string{
		b.Op("Gather", []string{wte, ids}, g.AttrInt("axis", 0)),
		b.Op("Gather", []string{wpe, pos}, g.AttrInt("axis", 0)),
	})

	// Bias [batch, 1, new, past+new]: -1e9 where the mask is 0, or where a
	// new token would see a later new token.
	shapeIDs := b.Op("Shape", []string{ids})
	newLen := b.Op("Gather", []string{shapeIDs, one}, g.AttrInt("axis", 0))
	totalLen := b.Op("Gather", []string{b.Op("Shape", []string{mask}), one}, g.AttrInt("axis", 0))
	pastLen := b.Op("Sub", []string{totalLen, newLen})
	rowsIdx := b.Op("Unsqueeze", []string{b.Op("Range", []string{zero, newLen, one}), b.Init(ints("const.axis_last", 1))}) // [new, 1]
	colsIdx := b.Op("Sub", []string{b.Op("Range", []string{zero, totalLen, one}), pastLen})                                // [past+new]: -past..new-1
	causal := b.Op("Cast", []string{b.Op("LessOrEqual", []string{colsIdx, rowsIdx})}, g.AttrInt("to", int64(g.Float)))     // [new, past+new]
	maskF := b.Op("Cast", []string{mask}, g.AttrInt("to", int64(g.Float)))                                                 // [batch, past+new]
	maskF = b.Op("Unsqueeze", []string{maskF, b.Init(ints("const.axes12", 1, 2))})                                         // [batch,1,1,past+new]
	allowed := b.Op("Mul", []string{maskF, causal})                                                                        // [batch,1,new,past+new]
	bias := b.Op("Mul", []string{b.Op("Sub", []string{b.Init(scalarF("const.onef", 1)), allowed}), b.Init(scalarF("const.neg", -1e9))})

	pastLen1 := b.Op("Unsqueeze", []string{pastLen, b.Init(ints("const.axis0", 0))}) // [1]
	b.Init(ints("const.zero1", 0))
	b.Init(ints("const.max1", math.MaxInt64))
	b.Init(ints("const.axis3", 3))
	splitShape := b.Init(ints("const.split_heads", 0, 0, gptHeads, gptHeadDim))
	mergeShape := b.Init(ints("const.merge_heads", 0, 0, gptHidden))
	scale := b.Init(scalarF("const.scale", float32(1/math.Sqrt(gptHeadDim))))
	half := b.Init(scalarF("const.half", 0.5))
	invSqrt2 := b.Init(scalarF("const.inv_sqrt2", float32(1/math.Sqrt2)))
	for l := range gptLayers {
		p := fmt.Sprintf("h%d", l)
		heads := func(v string) string { // [batch,new,hidden] -> [batch,heads,new,dim]
			return b.Op("Transpose", []string{b.Op("Reshape", []string{v, splitShape})}, g.AttrInts("perm", 0, 2, 1, 3))
		}
		h := layerNorm(x, p+".ln_1")
		q := heads(linear(h, p+".attn.q", gptHidden, gptHidden))
		// Attention reads the past where it lies: scores against past
		// and new keys are computed apart and joined (a row of
		// past+new scores, small), and the weighted sums of past and new
		// values are added, so the past keys and values are never
		// copied; only the new ones are returned.
		keysT := func(k string) string { return b.Op("Transpose", []string{k}, g.AttrInts("perm", 0, 1, 3, 2)) }
		newK, newV := heads(linear(h, p+".attn.k", gptHidden, gptHidden)), heads(linear(h, p+".attn.v", gptHidden, gptHidden))
		var attended string
		if present {
			k := b.OpNamed(fmt.Sprintf("present_key_%d", l), "Concat", []string{pastK[l], newK}, g.AttrInt("axis", 2))
			v := b.OpNamed(fmt.Sprintf("present_value_%d", l), "Concat", []string{pastV[l], newV}, g.AttrInt("axis", 2))
			scores := b.Op("Add", []string{b.Op("Mul", []string{b.Op("MatMul", []string{q, keysT(k)}), scale}), bias})
			attended = b.Op("MatMul", []string{b.Op("Softmax", []string{scores}, g.AttrInt("axis", -1)), v})
		} else {
			k := b.OpNamed(fmt.Sprintf("new_key_%d", l), "Identity", []string{newK})
			v := b.OpNamed(fmt.Sprintf("new_value_%d", l), "Identity", []string{newV})
			joined := b.Op("Concat", []string{b.Op("MatMul", []string{q, keysT(pastK[l])}), b.Op("MatMul", []string{q, keysT(k)})}, g.AttrInt("axis", 3))
			scores := b.Op("Add", []string{b.Op("Mul", []string{joined, scale}), bias})
			probs := b.Op("Softmax", []string{scores}, g.AttrInt("axis", -1))
			pastProbs := b.Op("Slice", []string{probs, "const.zero1", pastLen1, "const.axis3"})
			newProbs := b.Op("Slice", []string{probs, pastLen1, "const.max1", "const.axis3"})
			attended = b.Op("Add", []string{b.Op("MatMul", []string{pastProbs, pastV[l]}), b.Op("MatMul", []string{newProbs, v})})
		}
		ctx := b.Op("Reshape", []string{b.Op("Transpose", []string{attended}, g.AttrInts("perm", 0, 2, 1, 3)), mergeShape})
		x = b.Op("Add", []string{x, linear(ctx, p+".attn.out", gptHidden, gptHidden)})
		h = linear(layerNorm(x, p+".ln_2"), p+".mlp.in", gptHidden, gptFFN)
		erf := b.Op("Erf", []string{b.Op("Mul", []string{h, invSqrt2})})
		h = b.Op("Mul", []string{b.Op("Mul", []string{h, half}), b.Op("Add", []string{erf, "const.onef"})})
		x = b.Op("Add", []string{x, linear(h, p+".mlp.out", gptFFN, gptHidden)})
	}
	x = layerNorm(x, "ln_f")
	// The last new token of each row, then the tied projection.
	last := b.Op("Sub", []string{newLen, one})
	lastX := b.Op("Gather", []string{x, last}, g.AttrInt("axis", 1)) // [batch, hidden]
	b.OpNamed("logits", "MatMul", []string{lastX, b.Op("Transpose", []string{wte}, g.AttrInts("perm", 1, 0))})
	b.Output("logits", g.Float, batch, g.Fixed(vocab))
	for l := range gptLayers {
		if present {
			b.Output(fmt.Sprintf("present_key_%d", l), g.Float, batch, g.Fixed(gptHeads), total, g.Fixed(gptHeadDim))
			b.Output(fmt.Sprintf("present_value_%d", l), g.Float, batch, g.Fixed(gptHeads), total, g.Fixed(gptHeadDim))
		} else {
			b.Output(fmt.Sprintf("new_key_%d", l), g.Float, batch, g.Fixed(gptHeads), news, g.Fixed(gptHeadDim))
			b.Output(fmt.Sprintf("new_value_%d", l), g.Float, batch, g.Fixed(gptHeads), news, g.Fixed(gptHeadDim))
		}
	}
	return model(b, "2-layer GPT-like decoder (hidden 128, 4 heads, tied embeddings) with an explicit key/value cache per layer, returning the new tokens' keys and values; deterministic weights; the text-encoder's WordPiece vocabulary in vocab.txt.")
}
