package runner

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"
)

// The benchmarks compare the batcher with the runtime alone, on mlp:
//
//	go test ./pkg/runner -run '^$' -bench . -benchtime 2s
//
// BenchmarkRawMLP is ONNX Runtime's own throughput at each batch size: one
// session with the runtime's defaults, tensors made once, Run in a loop.
// BenchmarkBatcherMLP sends single-row requests from N concurrent callers
// through Model.Infer (queue, batcher, concatenation, split), for each
// instance layout, and reports, beside its own rows/s, the mean batch it
// formed and the fraction of raw throughput at that batch size, measured in
// the same run. The callers share the machine's cores with the runtime.
//
// INFER_BENCH_DEVICE (such as cuda:0) puts the raw sessions and the
// batcher's instances on that device.

// rawSession runs mlp directly in ONNX Runtime at a fixed batch size.
type rawSession struct {
	session *ort.DynamicAdvancedSession
	in, out *ort.Tensor[float32]
	rows    int64
}

func newRawSession(b *testing.B, rows int64) *rawSession {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(bundled, "mlp", "1", ModelFile))
	if err != nil {
		b.Fatal(err)
	}
	// The runtime's defaults: every core, threads spinning; on the
	// device asked for, if any.
	var opts *ort.SessionOptions
	if dev := benchDevice(b); dev.Kind != "cpu" {
		if opts, err = ort.NewSessionOptions(); err != nil {
			b.Fatal(err)
		}
		defer opts.Destroy()
		if err := appendProvider(opts, dev, nil); err != nil {
			b.Fatal(err)
		}
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{"image"}, []string{"probabilities"}, opts)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, rows*784)
	for i := range x {
		x[i] = float32(i%255) / 255
	}
	in, err := ort.NewTensor(ort.NewShape(rows, 784), x)
	if err != nil {
		b.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(rows, 10))
	if err != nil {
		b.Fatal(err)
	}
	return &rawSession{session: s, in: in, out: out, rows: rows}
}

func (r *rawSession) run(b *testing.B) {
	if err := r.session.Run([]ort.Value{r.in}, []ort.Value{r.out}); err != nil {
		b.Fatal(err)
	}
}

func (r *rawSession) close() {
	r.in.Destroy()
	r.out.Destroy()
	r.session.Destroy()
}

// rowsPerSecond measures raw throughput at r's batch size for about d.
func (r *rawSession) rowsPerSecond(b *testing.B, d time.Duration) float64 {
	r.run(b) // warm
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		r.run(b)
		n++
	}
	return float64(n) * float64(r.rows) / time.Since(start).Seconds()
}

func BenchmarkRawMLP(b *testing.B) {
	for _, rows := range []int64{1, 2, 4, 8, 16, 32, 64, 128, 256} {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			r := newRawSession(b, rows)
			defer r.close()
			r.run(b)
			b.ResetTimer()
			for b.Loop() {
				r.run(b)
			}
			b.ReportMetric(float64(b.N)*float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// batcherLayouts are the instance layouts BenchmarkBatcherMLP compares:
// one session using every core, and one single-threaded session per core,
// whose smaller batches keep a full batch waiting for each instance.
var batcherLayouts = []struct {
	name string
	cfg  Config
}{
	{"1x2threads", Config{MaxBatchSize: intp(256)}},
	{"2x1thread", Config{MaxBatchSize: intp(16), Instances: 2, IntraOpThreads: 1,
		DynamicBatching: DynamicBatching{MaxQueueDelay: Duration(500 * time.Microsecond)}}},
}

func BenchmarkBatcherMLP(b *testing.B) {
	for _, layout := range batcherLayouts {
		for _, callers := range []int{1, 8, 64, 256} {
			b.Run(fmt.Sprintf("layout=%s/callers=%d", layout.name, callers), func(b *testing.B) {
				benchmarkBatcher(b, layout.cfg, callers)
			})
		}
	}
}

// benchDevice is the device INFER_BENCH_DEVICE names (default cpu).
func benchDevice(b *testing.B) Device {
	name := os.Getenv("INFER_BENCH_DEVICE")
	if name == "" {
		name = "cpu"
	}
	dev, err := ParseDevice(name)
	if err != nil {
		b.Fatalf("INFER_BENCH_DEVICE: %v", err)
	}
	return dev
}

func benchmarkBatcher(b *testing.B, cfg Config, callers int) {
	cfg.Device = benchDevice(b).String()
	m := loadBundled(b, "mlp", cfg)
	r := rand.New(rand.NewPCG(1, 1))
	reqs := make([]*Request, callers)
	for i := range reqs {
		reqs[i] = randomRequest(m, 1, 1, r)
	}
	before := m.Stats()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range callers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := m.Infer(context.Background(), reqs[c]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	after := m.Stats()
	rowsPerSec := float64(b.N) / b.Elapsed().Seconds()
	meanBatch := float64(after.Rows-before.Rows) / float64(max(1, after.Executions-before.Executions))
	b.ReportMetric(rowsPerSec, "rows/s")
	b.ReportMetric(meanBatch, "mean-batch")
	// Where the time went: the instances' share of the run spent executing,
	// one execution's mean duration, and a request's mean time queued.
	execs := float64(max(1, after.Executions-before.Executions))
	b.ReportMetric(float64(after.ExecutionTime-before.ExecutionTime)/float64(b.Elapsed())/float64(len(m.instances)), "busy")
	b.ReportMetric(float64(after.ExecutionTime-before.ExecutionTime)/execs/1e3, "exec-us")
	b.ReportMetric(float64(after.Queue-before.Queue)/float64(b.N)/1e3, "queue-us")

	// Raw throughput at the batch size formed, in this same run.
	m.Close()
	raw := newRawSession(b, int64(math.Round(meanBatch)))
	defer raw.close()
	b.ReportMetric(rowsPerSec/raw.rowsPerSecond(b, 500*time.Millisecond), "of-raw")
}
