package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	g "github.com/infer-serving/infer/pkg/onnxgraph"
)

// Shape of the many-models repository's models: FP32 features
// [batch,manyFeatures] -> FP32 scores [batch,manyClasses] through one
// hidden layer, whose width sets the file's size.
const (
	manyFeatures = 64
	manyClasses  = 8
	manyPrefix   = "m"
)

// manyHidden is the hidden width that gives a model of about mib MiB of
// FP32 weights (the file adds a few hundred bytes).
func manyHidden(mib float64) int64 {
	return max(int64(mib*(1<<20)/4/float64(manyFeatures+manyClasses)), 1)
}

// manyModel is model i of the many-models repository: an MLP with weights
// of its own (seeded by i), so that no two files are the same and nothing
// can share one model's memory with another's; version seeds them too.
func manyModel(i, version int, hiddenWidth int64) *g.Model {
	r := &rng{s: 1000 + uint64(version)*1000 + uint64(i)}
	b := g.NewBuilder(manyName(i))
	x := b.Input("features", g.Float, g.Symbolic("batch"), g.Fixed(manyFeatures))
	w1 := b.Init(r.glorot("fc1.weight", manyFeatures, hiddenWidth))
	b1 := b.Init(g.Float32Tensor("fc1.bias", []int64{hiddenWidth}, r.uniform(int(hiddenWidth), 0.05)))
	w2 := b.Init(r.glorot("fc2.weight", hiddenWidth, manyClasses))
	h := b.Op("Relu", []string{b.Op("Add", []string{b.Op("MatMul", []string{x, w1}), b1})})
	b.OpNamed("scores", "MatMul", []string{h, w2})
	b.Output("scores", g.Float, g.Symbolic("batch"), g.Fixed(manyClasses))
	return model(b, fmt.Sprintf("many-models repository, model %d version %d: %d-%d-%d MLP with ReLU; deterministic weights of its own.", i, version, manyFeatures, hiddenWidth, manyClasses))
}

// manyName names model i: m00, m01, ... (zero-padded, so that names sort
// as numbers up to 1000 models).
func manyName(i int) string { return fmt.Sprintf("%s%03d", manyPrefix, i) }

// writeMany writes n distinct models of about mib MiB each into dir as a
// model repository, dir/m000/1/model.onnx and on, each with a config.yaml
// that batches; version names the version folder written (each version's
// weights are its own), for polling tests that copy a new version in.
func writeMany(dir string, n int, mib float64, version int) error {
	if n < 1 || n > 1000 {
		return fmt.Errorf("-many %d: want 1 to 1000 models", n)
	}
	if mib <= 0 || mib > 256 {
		return fmt.Errorf("-many-mib %v: want a size in (0, 256] MiB", mib)
	}
	if version < 1 {
		return fmt.Errorf("-many-version %d: want 1 or more", version)
	}
	width := manyHidden(mib)
	const config = "# A generated model of the many-models repository.\nmax_batch_size: 32\ndynamic_batching:\n  max_queue_delay: 0s\n"
	var errs []error
	for i := range n {
		folder := filepath.Join(dir, manyName(i))
		m := manyModel(i, version, width)
		errs = append(errs, emit(filepath.Join(folder, fmt.Sprint(version), "model.onnx"), m.Encode(), false))
		if _, err := os.Stat(filepath.Join(folder, "config.yaml")); errors.Is(err, os.ErrNotExist) {
			errs = append(errs, emit(filepath.Join(folder, "config.yaml"), []byte(config), false))
		}
	}
	return errors.Join(errs...)
}
