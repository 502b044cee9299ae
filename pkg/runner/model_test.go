package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// randomRequest returns a request for m with rows rows of uniform random
// inputs (and, for text-encoder, token ids and masks of sequence length seq).
func randomRequest(m *Model, rows, seq int64, r *rand.Rand) *Request {
	req := &Request{}
	for _, spec := range m.Metadata().Inputs {
		shape := append([]int64(nil), spec.Shape...)
		for j := range shape {
			switch {
			case j == 0:
				shape[j] = rows
			case shape[j] < 0:
				shape[j] = seq
			}
		}
		n := tensor.Elements(shape)
		var t tensor.Tensor
		switch spec.DataType {
		case tensor.FP32:
			t = tensor.New(spec.Name, shape, randomFloats(n, 1, r))
		case tensor.Int64:
			v := make([]int64, n)
			for i := range v {
				v[i] = 1 + r.Int64N(8000) // token ids within the vocabulary
				if spec.Name == "attention_mask" {
					v[i] = int64(min(1, r.IntN(4))) // mostly attended
				}
			}
			t = tensor.New(spec.Name, shape, v)
		case tensor.Bool:
			v := make([]bool, n)
			for i := range v {
				v[i] = r.IntN(2) == 1
			}
			t = tensor.NewBool(spec.Name, shape, v)
		case tensor.FP16:
			t = tensor.NewFP16(spec.Name, shape, randomFloats(n, 100, r))
		case tensor.FP64:
			v := make([]float64, n)
			for i := range v {
				v[i] = r.NormFloat64()
			}
			t = tensor.New(spec.Name, shape, v)
		case tensor.Uint8:
			v := make([]uint8, n)
			for i := range v {
				v[i] = uint8(r.UintN(256))
			}
			t = tensor.New(spec.Name, shape, v)
		}
		req.Inputs = append(req.Inputs, t)
	}
	return req
}

// randomFloats returns n values uniform in [0, scale).
func randomFloats(n int64, scale float32, r *rand.Rand) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32() * scale
	}
	return v
}

// assertClose fails unless got and want hold the same tensors, float
// elements within tol and all others exactly.
func assertClose(t *testing.T, label string, got, want []tensor.Tensor, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", label, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DataType != w.DataType || fmt.Sprint(g.Shape) != fmt.Sprint(w.Shape) {
			t.Fatalf("%s: output %s %s %v, want %s %s %v", label, g.Name, g.DataType, g.Shape, w.Name, w.DataType, w.Shape)
		}
		switch g.DataType {
		case tensor.FP32:
			gv, _ := tensor.Values[float32](g)
			wv, _ := tensor.Values[float32](w)
			for k := range gv {
				if d := math.Abs(float64(gv[k] - wv[k])); d > tol || math.IsNaN(float64(gv[k])) {
					t.Fatalf("%s: %s[%d] = %v, want %v (|diff| %g > %g)", label, g.Name, k, gv[k], wv[k], d, tol)
				}
			}
		default:
			if string(g.Data) != string(w.Data) {
				t.Fatalf("%s: %s differs: got %v, want %v", label, g.Name, g.Data, w.Data)
			}
		}
	}
}

// Every caller of a batched model gets exactly the output an unbatched run
// of its own input gives, however the batcher merged the requests.
func TestBatchedOutputsMatchUnbatched(t *testing.T) {
	for _, tc := range []struct {
		model string
		seq   func(r *rand.Rand) int64
	}{
		{"mlp", nil},
		{"multi-io", nil},
		{"text-encoder", func(r *rand.Rand) int64 { return 4 + r.Int64N(3) }}, // three shapes that must not merge
	} {
		t.Run(tc.model, func(t *testing.T) {
			batched := loadBundled(t, tc.model, Config{MaxBatchSize: intp(64), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(2 * time.Millisecond)}})
			reference := loadBundled(t, tc.model, Config{MaxBatchSize: intp(0)})

			const callers = 64
			r := rand.New(rand.NewPCG(7, 7))
			reqs := make([]*Request, callers)
			for i := range reqs {
				seq := int64(1)
				if tc.seq != nil {
					seq = tc.seq(r)
				}
				reqs[i] = randomRequest(batched, 1+int64(i%3), seq, r) // 1 to 3 rows each
				reqs[i].ID = fmt.Sprint(i)
			}
			got := make([]*Response, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range reqs {
				wg.Go(func() { got[i], errs[i] = batched.Infer(context.Background(), reqs[i]) })
			}
			wg.Wait()

			merged := 0
			for i, req := range reqs {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if got[i].ID != req.ID {
					t.Fatalf("caller %d: response id %q", i, got[i].ID)
				}
				want, err := reference.Infer(context.Background(), req)
				if err != nil {
					t.Fatalf("reference %d: %v", i, err)
				}
				assertClose(t, fmt.Sprintf("caller %d", i), got[i].Outputs, want.Outputs, 1e-5)
				if got[i].Timing.BatchSize > int(req.Inputs[0].Shape[0]) {
					merged++
				}
			}
			if merged == 0 {
				t.Fatal("no request ran in a batch with another: the test did not exercise batching")
			}
			if s := batched.Stats(); s.Executions >= callers {
				t.Fatalf("%d executions for %d callers: requests were not merged", s.Executions, callers)
			}
		})
	}
}

func TestRequestedOutputsAreFiltered(t *testing.T) {
	m := loadBundled(t, "multi-io", Config{})
	req := randomRequest(m, 2, 1, rand.New(rand.NewPCG(1, 2)))
	req.Outputs = []string{"wide_sum", "ids_doubled"}
	resp, err := m.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "wide_sum" || resp.Outputs[1].Name != "ids_doubled" {
		t.Fatalf("outputs %+v, want wide_sum then ids_doubled", resp.Outputs)
	}
	ids, _ := tensor.Values[int64](req.Inputs[0])
	doubled, _ := tensor.Values[int64](resp.Outputs[1])
	for i := range ids {
		if doubled[i] != 2*ids[i] {
			t.Fatalf("ids_doubled[%d] = %d, want %d", i, doubled[i], 2*ids[i])
		}
	}
}

func TestBatchNeverExceedsMaxBatchSize(t *testing.T) {
	const maxBatch = 8
	m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(maxBatch), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Millisecond)}})
	r := rand.New(rand.NewPCG(3, 3))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sizes []int
	for i := range 96 {
		req := randomRequest(m, 1+int64(i%3), 1, r)
		wg.Go(func() {
			resp, err := m.Infer(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sizes = append(sizes, resp.Timing.BatchSize)
			mu.Unlock()
		})
	}
	wg.Wait()
	biggest := 0
	for _, s := range sizes {
		if s > maxBatch {
			t.Fatalf("a request ran in a batch of %d rows, max_batch_size is %d", s, maxBatch)
		}
		biggest = max(biggest, s)
	}
	st := m.Stats()
	var counted int64
	for n, c := range st.BatchSizes {
		counted += int64(n) * c
	}
	if counted != st.Rows {
		t.Fatalf("batch-size histogram holds %d rows, %d were run: some batch was larger than %d", counted, st.Rows, maxBatch)
	}
	// Triton's per-request accounting: each request is charged its queue
	// time and its batch's compute phases, and its success time covers both.
	if st.Success != 96 || st.ComputeInfer <= 0 || st.ComputeInput <= 0 || st.ComputeOutput <= 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.SuccessTime < st.Queue+st.ComputeInput+st.ComputeInfer+st.ComputeOutput {
		t.Fatalf("success time %v < queue %v + compute %v", st.SuccessTime, st.Queue, st.ComputeInput+st.ComputeInfer+st.ComputeOutput)
	}
	if st.LastInference.IsZero() || st.ExecutionTime <= 0 {
		t.Fatalf("stats %+v", st)
	}
	if biggest < 4 {
		t.Fatalf("largest batch %d: 96 concurrent callers never formed a real batch", biggest)
	}
	if _, err := m.Infer(context.Background(), randomRequest(m, maxBatch+1, 1, r)); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("a request of %d rows: err %v, want ErrInvalidInput", maxBatch+1, err)
	}
}

func TestFullQueueRejectsAtOnce(t *testing.T) {
	// A long delay and a batch that never fills keep requests queued.
	m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(64), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Minute), MaxQueueSize: 2}})
	r := rand.New(rand.NewPCG(4, 4))
	done := make(chan error, 2)
	for range 2 {
		req := randomRequest(m, 1, 1, r)
		go func() { _, err := m.Infer(context.Background(), req); done <- err }()
	}
	waitFor(t, func() bool { return m.Stats().QueueLength == 2 })

	start := time.Now()
	_, err := m.Infer(context.Background(), randomRequest(m, 1, 1, r))
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third request: err %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("queue-full took %v to answer: it must be immediate", d)
	}
	// Closing answers what was queued, then refuses new work.
	m.Close()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("queued request after close: %v", err)
		}
	}
	if _, err := m.Infer(context.Background(), randomRequest(m, 1, 1, r)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: err %v, want ErrClosed", err)
	}
}

func TestExpiredRequestIsNeverExecuted(t *testing.T) {
	m := loadBundled(t, "mlp", Config{MaxBatchSize: intp(64), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Minute)}})
	r := rand.New(rand.NewPCG(5, 5))

	// Already expired: refused before it is queued.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if _, err := m.Infer(ctx, randomRequest(m, 1, 1, r)); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("expired request: err %v, want ErrDeadlineExceeded", err)
	}
	// Expires while queued (the one-minute delay holds it): answered at its
	// deadline, never run.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := m.Infer(ctx2, randomRequest(m, 1, 1, r)); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("request expiring in the queue: err %v, want ErrDeadlineExceeded", err)
	}
	// The default timeout from config applies to requests without one.
	m2 := loadBundled(t, "mlp", Config{MaxBatchSize: intp(64), DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(time.Minute), DefaultTimeout: Duration(20 * time.Millisecond)}})
	if _, err := m2.Infer(context.Background(), randomRequest(m2, 1, 1, r)); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("request past default_timeout: err %v, want ErrDeadlineExceeded", err)
	}
	waitFor(t, func() bool { return m.Stats().QueueLength == 0 && m2.Stats().QueueLength == 0 })
	if e := m.Stats().Executions + m2.Stats().Executions; e != 0 {
		t.Fatalf("%d executions: an expired request ran", e)
	}
}

func TestFixedShapeModelIsNeverBatched(t *testing.T) {
	m := loadBundled(t, "fixed-shape", Config{})
	if *m.Config().MaxBatchSize != 0 {
		t.Fatalf("max_batch_size defaulted to %d for a fixed-shape model", *m.Config().MaxBatchSize)
	}
	const callers = 32
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			x := []float32{1, 2, 3, 4, 5, float32(i)}
			resp, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{tensor.New("matrix", []int64{2, 3}, x)}})
			if err != nil {
				t.Error(err)
				return
			}
			y, _ := tensor.Values[float32](resp.Outputs[0])
			// transposed = 10 * x^T: [[1,4],[2,5],[3,i]] * 10
			if want := []float32{10, 40, 20, 50, 30, 10 * float32(i)}; fmt.Sprint(y) != fmt.Sprint(want) {
				t.Errorf("caller %d: %v, want %v", i, y, want)
			}
			if resp.Timing.BatchSize != 1 {
				t.Errorf("caller %d ran in a batch of %d", i, resp.Timing.BatchSize)
			}
		})
	}
	wg.Wait()
	if e := m.Stats().Executions; e != callers+0 {
		t.Fatalf("%d executions for %d requests: a fixed-shape model must run each alone", e, callers)
	}

	// Asking to batch it is a configuration error that names the field.
	data, _ := os.ReadFile(filepath.Join(bundled, "fixed-shape", "1", ModelFile))
	_, err := LoadModel("fixed-shape", 1, data, Config{MaxBatchSize: intp(4)}, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "max_batch_size") {
		t.Fatalf("max_batch_size 4 on a fixed-shape model: err %v, want a max_batch_size error", err)
	}
}

func TestInvalidInputsNameTheProblem(t *testing.T) {
	m := loadBundled(t, "mlp", Config{})
	good := tensor.New("image", []int64{1, 784}, make([]float32, 784))
	for _, tc := range []struct {
		name   string
		inputs []tensor.Tensor
		want   string
	}{
		{"missing input", nil, "takes 1 inputs"},
		{"unknown name", []tensor.Tensor{tensor.New("pixels", []int64{1, 784}, make([]float32, 784))}, `"pixels"`},
		{"wrong datatype", []tensor.Tensor{tensor.New("image", []int64{1, 784}, make([]float64, 784))}, "datatype FP64"},
		{"wrong rank", []tensor.Tensor{tensor.New("image", []int64{784}, make([]float32, 784))}, "dimensions"},
		{"wrong dimension", []tensor.Tensor{tensor.New("image", []int64{1, 783}, make([]float32, 783))}, "dimension 1 is 783"},
		{"short data", []tensor.Tensor{{Name: "image", DataType: tensor.FP32, Shape: []int64{1, 784}, Data: good.Data[:100]}}, "needs 3136 bytes"},
		{"zero in a fixed dimension", []tensor.Tensor{{Name: "image", DataType: tensor.FP32, Shape: []int64{1, 0}}}, "dimension 1 is 0, the model expects 784"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Infer(context.Background(), &Request{Inputs: tc.inputs})
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalidInput mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{good}, Outputs: []string{"logits"}}); err == nil || !strings.Contains(err.Error(), `"logits"`) {
		t.Fatalf("unknown requested output: err %v", err)
	}
	// Twice the same output: one answer could not tell the two apart
	// (one plain, one classified came back classified both times).
	if _, err := m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{good}, Outputs: []string{"probabilities", "probabilities"}}); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), `"probabilities": asked for twice`) {
		t.Fatalf("an output asked for twice: err %v", err)
	}
}

// waitFor polls cond (for state another goroutine reaches) for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A device the runtime cannot use fails the load with an error naming it,
// unless the config allows falling back to the CPU: for a model's
// instances and for a generator's decoder alike. No machine has a GPU
// numbered 99, so this holds with or without CUDA.
func TestUnavailableDeviceFailsOrFallsBackToCPU(t *testing.T) {
	for _, name := range []string{"mlp", "tiny-gpt"} {
		data, err := os.ReadFile(filepath.Join(bundled, name, "1", ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		load := func(fallback bool) (Device, error) {
			if name == "tiny-gpt" {
				d, err := LoadDecoder(name, data, Config{Device: "cuda:99", FallbackToCPU: fallback, IntraOpThreads: 1})
				if err != nil {
					return Device{}, err
				}
				defer d.Close()
				return d.Device(), nil
			}
			m, err := LoadModel(name, 1, data, Config{Device: "cuda:99", FallbackToCPU: fallback}, LoadOptions{})
			if err != nil {
				return Device{}, err
			}
			defer m.Close()
			return m.Device(), nil
		}
		if _, err := load(false); !errors.Is(err, ErrDeviceUnavailable) || !strings.Contains(err.Error(), "cuda:99") {
			t.Errorf("%s on cuda:99 without fallback: %v, want ErrDeviceUnavailable naming cuda:99", name, err)
		}
		if dev, err := load(true); err != nil || dev.Kind != "cpu" {
			t.Errorf("%s on cuda:99 with fallback_to_cpu: device %v, %v; want it loaded on cpu", name, dev, err)
		}
	}
}

// A warm-up of more runs than the load timeout allows stops at it, and
// the version serves: a config asking for a billion runs once kept the
// server in start-up for good.
func TestWarmupStopsAtTheLoadTimeout(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	runs := 1_000_000_000
	start := time.Now()
	m, err := LoadModel("mlp", 1, data, Config{Isolation: IsolationNone, Warmup: Warmup{Runs: &runs}}, LoadOptions{LoadTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("the load took %v with a load timeout of 200ms", took)
	}
	if _, err := m.Infer(context.Background(), randomRequest(m, 1, 1, rand.New(rand.NewPCG(1, 2)))); err != nil {
		t.Fatal(err)
	}
}
