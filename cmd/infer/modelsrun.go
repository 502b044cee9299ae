package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

type runOptions struct {
	model       string
	requests    int
	concurrency int
	seed        uint64
	device      string
	// bundled is set when the models are the bundled ones, whose
	// generator's weights are random.
	bundled bool
}

func newModelsRunCmd(g *globalOptions) *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run [MODEL.onnx | MODEL_REPOSITORY]",
		Short: "Run inference in process on random inputs and print outputs and timings (default: the bundled models)",
		Long: `Run inference in process, through the same queue and dynamic batcher a server
uses, on random inputs generated from each model's metadata (floats in [0,1),
integers and booleans 0 or 1), and print each model's first outputs, the batch
sizes that formed and the queue and infer phases.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.requests < 1 || o.concurrency < 1 {
				return fmt.Errorf("--requests and --concurrency must be at least 1 (got %d and %d)", o.requests, o.concurrency)
			}
			ro := repoOptions{device: o.device}
			if o.model != "" {
				// That model alone loads: a name the repository does not
				// hold is refused at once, listing those it does.
				ro.control = runner.Control{Mode: runner.ControlOnDemand, Warm: []string{o.model}}
			}
			if path := firstArg(args); path != "" && o.model == "" && bundledModel(path) {
				if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%s: no such file or folder; to run the bundled model %s: infer models run -m %s", path, path, path)
				}
			}
			repo, err := openRepositoryWith(g, firstArg(args), ro, cmd.ErrOrStderr())
			if errors.Is(err, runner.ErrModelNotFound) {
				return fmt.Errorf("--model: %w", err)
			}
			if err != nil {
				return err
			}
			defer repo.Close()
			o.bundled = len(args) == 0
			return runModels(cmd.Context(), repo, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&o.model, "model", "m", "", "run only this model (default: every ready model)")
	cmd.Flags().IntVar(&o.requests, "requests", 64, "requests per model")
	cmd.Flags().IntVarP(&o.concurrency, "concurrency", "c", 8, "requests in flight at once")
	cmd.Flags().Uint64Var(&o.seed, "seed", 1, "seed of the random inputs")
	cmd.Flags().StringVar(&o.device, "device", "", "device of the models whose config.yaml names none: cpu, cuda:N or tensorrt:N (default cpu)")
	return cmd
}

func runModels(ctx context.Context, repo *runner.Repository, o runOptions, w io.Writer) error {
	var models []*runner.Model
	for _, s := range repo.Index() {
		if s.State != runner.StateReady || o.model != "" && s.Name != o.model {
			continue
		}
		m, err := repo.Model(s.Name, s.Version)
		if err != nil {
			return err
		}
		models = append(models, m)
	}
	if len(models) == 0 {
		if o.model != "" {
			return fmt.Errorf("--model %q: no such ready model%s", o.model, knownModels(repo))
		}
		return fmt.Errorf("no ready model to run")
	}
	for _, m := range models {
		if err := runModel(ctx, m, o, w); err != nil {
			return err
		}
	}
	return nil
}

// demoSentences feed text inputs, varied in length so that padding per
// batch shows.
var demoSentences = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Inference servers batch requests together.",
	"Hello, world!",
	"Dynamic batching trades a little latency for a lot of throughput on busy models.",
}

func runModel(ctx context.Context, m *runner.Model, o runOptions, w io.Writer) error {
	if g := generate.Of(m); g != nil {
		return runGenerator(ctx, m, g, o, w)
	}
	meta := m.Metadata()
	batched := *m.Config().MaxBatchSize > 0
	if err := runner.CheckSyntheticInputs(meta.Inputs, 1, batched); err != nil {
		return fmt.Errorf("model %q: %w", meta.Name, err)
	}
	r := rand.New(rand.NewPCG(o.seed, 0))
	reqs := make([]*runner.Request, o.requests)
	for i := range reqs {
		reqs[i] = &runner.Request{ID: fmt.Sprint(i)}
		for _, t := range runner.SyntheticInputs(meta.Inputs, 1, batched) {
			if t.DataType == tensor.Bytes { // a text input: real sentences
				s := demoSentences[i%len(demoSentences)]
				data := binary.LittleEndian.AppendUint32(nil, uint32(len(s)))
				reqs[i].Inputs = append(reqs[i].Inputs, tensor.Tensor{Name: t.Name, DataType: tensor.Bytes, Shape: t.Shape, Data: append(data, s...)})
				continue
			}
			reqs[i].Inputs = append(reqs[i].Inputs, tensor.Random(t.Name, t.DataType, t.Shape, r))
		}
	}
	resps := make([]*runner.Response, len(reqs))
	errs := make([]error, len(reqs))
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		wg.Go(func() {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= len(reqs) {
					return
				}
				resps[k], errs[k] = m.Infer(ctx, reqs[k])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for k, err := range errs {
		if err != nil {
			return fmt.Errorf("model %q request %d: %w", meta.Name, k, err)
		}
	}

	fmt.Fprintf(w, "%s (version %d, %s, max batch %d): loaded in %v, warmed up in %v\n",
		meta.Name, meta.Version, m.Device(), *m.Config().MaxBatchSize, m.LoadDuration().Round(time.Microsecond), m.WarmupDuration().Round(time.Microsecond))
	fmt.Fprintf(w, "  %d requests, %d in flight: %.0f requests/s\n", len(reqs), o.concurrency, float64(len(reqs))/elapsed.Seconds())
	sizes := map[int]int{}
	for _, resp := range resps {
		sizes[resp.Timing.BatchSize]++
	}
	var formed []string
	for _, n := range slices.Sorted(maps.Keys(sizes)) {
		formed = append(formed, fmt.Sprintf("%d (%d requests)", n, sizes[n]))
	}
	fmt.Fprintf(w, "  batch sizes: %s\n", strings.Join(formed, ", "))
	for _, ph := range []profile.Phase{profile.Queue, profile.Infer} {
		d := make([]time.Duration, len(resps))
		for k, resp := range resps {
			d[k] = resp.Timing.Get(ph)
		}
		slices.Sort(d)
		fmt.Fprintf(w, "  %-6s p50 %-10v p99 %-10v max %v\n", ph, d[len(d)/2].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
	}
	fmt.Fprintf(w, "  request 0:\n")
	for _, out := range resps[0].Outputs {
		fmt.Fprintf(w, "    %s %s %v: %s\n", out.Name, out.DataType, out.Shape, preview(out, 6))
	}
	return nil
}

// preview formats the first n elements of t.
func preview(t tensor.Tensor, n int) string {
	var vals []string
	switch t.DataType {
	case tensor.FP32:
		vals = previewValues[float32](t, n, "%.4f")
	case tensor.FP64:
		vals = previewValues[float64](t, n, "%.4f")
	case tensor.Int8:
		vals = previewValues[int8](t, n, "%d")
	case tensor.Int16:
		vals = previewValues[int16](t, n, "%d")
	case tensor.Int32:
		vals = previewValues[int32](t, n, "%d")
	case tensor.Int64:
		vals = previewValues[int64](t, n, "%d")
	case tensor.Uint8:
		vals = previewValues[uint8](t, n, "%d")
	case tensor.Uint16:
		vals = previewValues[uint16](t, n, "%d")
	case tensor.Uint32:
		vals = previewValues[uint32](t, n, "%d")
	case tensor.Uint64:
		vals = previewValues[uint64](t, n, "%d")
	case tensor.FP16, tensor.BF16:
		for i := 0; i+1 < len(t.Data) && len(vals) < n; i += 2 {
			h := uint16(t.Data[i]) | uint16(t.Data[i+1])<<8
			f := tensor.Float16ToFloat32(h)
			if t.DataType == tensor.BF16 {
				f = math.Float32frombits(uint32(h) << 16)
			}
			vals = append(vals, fmt.Sprintf("%.4f", f))
		}
	case tensor.Bool:
		for _, b := range t.Data[:min(n, len(t.Data))] {
			vals = append(vals, fmt.Sprint(b != 0))
		}
	default:
		return fmt.Sprintf("(%d bytes)", len(t.Data))
	}
	if tensor.Elements(t.Shape) > int64(n) {
		vals = append(vals, "...")
	}
	return strings.Join(vals, " ")
}

func previewValues[T tensor.Number](t tensor.Tensor, n int, format string) []string {
	v, err := tensor.Values[T](t)
	if err != nil {
		return []string{err.Error()}
	}
	out := make([]string, 0, min(n, len(v)))
	for _, x := range v[:min(n, len(v))] {
		out = append(out, fmt.Sprintf(format, x))
	}
	return out
}

// bundledRandomGenerator is the bundled text generator: its weights are
// seeded random numbers (testdata/gen), so its text shows the engine at
// work, not language.
const bundledRandomGenerator = "tiny-gpt"

// runGenerator generates from each demo sentence at once, greedily, and
// prints the texts, time to first token and tokens/s.
func runGenerator(ctx context.Context, m *runner.Model, g *generate.Generator, o runOptions, w io.Writer) error {
	meta := m.Metadata()
	n := min(max(o.concurrency, 1), len(demoSentences))
	type answer struct {
		ids  []int64
		ttft time.Duration
		err  error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		ch, err := g.Generate(ctx, generate.GenerateRequest{Prompt: g.Encode(demoSentences[i]), MaxTokens: 16})
		if err != nil {
			return fmt.Errorf("model %q: %w", meta.Name, err)
		}
		wg.Go(func() {
			for tok := range ch.All() {
				if tok.Err != nil {
					answers[i].err = tok.Err
					return
				}
				if len(answers[i].ids) == 0 {
					answers[i].ttft = time.Since(start)
				}
				if tok.Finish != "stop" {
					answers[i].ids = append(answers[i].ids, tok.ID)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cfg := g.Config()
	fmt.Fprintf(w, "%s (version %d, text generator, %s batching of up to %d): loaded in %v\n",
		meta.Name, meta.Version, cfg.Scheduling, cfg.MaxBatch, m.LoadDuration().Round(time.Microsecond))
	if o.bundled && meta.Name == bundledRandomGenerator {
		fmt.Fprintln(w, "  its weights are random, not trained: the text below shows the engine at work (batching, key/value cache, detokenizing), not language")
	}
	tokens := 0
	for i, a := range answers {
		if a.err != nil {
			return fmt.Errorf("model %q prompt %d: %w", meta.Name, i, a.err)
		}
		tokens += len(a.ids)
		fmt.Fprintf(w, "  %q -> %q (first token in %v)\n", demoSentences[i], g.Decode(a.ids), a.ttft.Round(time.Microsecond))
	}
	fmt.Fprintf(w, "  %d sequences at once: %d tokens in %v, %.0f tokens/s\n", n, tokens, elapsed.Round(time.Microsecond), float64(tokens)/elapsed.Seconds())
	return nil
}
