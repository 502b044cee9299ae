package runner

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// formed and the fraction of raw throughput at that batch size, measured
// between its rounds in the same run. The callers share the machine's cores
// with the runtime.
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

// measure runs r for about d, at least once, and returns the rows it ran.
func (r *rawSession) measure(b *testing.B, d time.Duration) int64 {
	start := time.Now()
	var rows int64
	for rows == 0 || time.Since(start) < d {
		r.run(b)
		rows += r.rows
	}
	return rows
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

// batcherRounds is how many rounds benchmarkBatcher splits its requests
// into, with a raw measurement after each.
const batcherRounds = 8

// benchmarkBatcher sends b.N single-row requests from callers goroutines
// through m.Infer, in rounds. After each round, with the callers stopped
// and the batcher idle, a raw session runs alone at the batch size the
// batcher has formed so far, for a quarter of the round's time. The two
// sides of "of-raw" so sample the same stretches of a shared machine,
// whose speed drifts by a third from minute to minute; measured one after
// the other, the ratio drifted as much.
func benchmarkBatcher(b *testing.B, cfg Config, callers int) {
	cfg.Device = benchDevice(b).String()
	m := loadBundled(b, "mlp", cfg)
	r := rand.New(rand.NewPCG(1, 1))
	reqs := make([]*Request, callers)
	for i := range reqs {
		reqs[i] = randomRequest(m, 1, 1, r)
	}
	round := func(n int) {
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
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
	}

	before := m.Stats()
	var raw *rawSession
	var rawRows int64
	// Each side's time, whole and less the share the host took (see
	// cpuTicks), over all rounds.
	var batcherTime, rawTime, batcherRan, rawRan time.Duration
	var stolen, ticks int64
	phase := func(f func()) (took, ran time.Duration) {
		s0, t0, ok0 := cpuTicks()
		start := time.Now()
		f()
		took = time.Since(start)
		s1, t1, ok1 := cpuTicks()
		ran = took
		if ok0 && ok1 && t1 > t0 {
			stolen += s1 - s0
			ticks += t1 - t0
			ran = time.Duration(float64(took) * (1 - float64(s1-s0)/float64(t1-t0)))
		}
		return took, ran
	}
	sent := 0
	b.ResetTimer()
	for i := range batcherRounds {
		n := b.N*(i+1)/batcherRounds - sent
		sent += n
		took, ran := phase(func() { round(n) })
		batcherTime += took
		batcherRan += ran

		b.StopTimer()
		s := m.Stats()
		mean := float64(s.Rows-before.Rows) / float64(max(1, s.Executions-before.Executions))
		if raw == nil {
			raw = newRawSession(b, max(1, int64(math.Round(mean))))
			defer raw.close()
			raw.run(b) // warm
		}
		took, ran = phase(func() { rawRows += raw.measure(b, took/4) })
		rawTime += took
		rawRan += ran
		b.StartTimer()
	}
	b.StopTimer()
	after := m.Stats()
	rowsPerSec := float64(b.N) / batcherTime.Seconds()
	execs := float64(max(1, after.Executions-before.Executions))
	b.ReportMetric(rowsPerSec, "rows/s")
	b.ReportMetric(float64(after.Rows-before.Rows)/execs, "mean-batch")
	// Where the time went: the instances' share of the run spent executing,
	// one execution's mean duration, and a request's mean time queued.
	b.ReportMetric(float64(after.ExecutionTime-before.ExecutionTime)/float64(b.Elapsed())/float64(len(m.instances)), "busy")
	b.ReportMetric(float64(after.ExecutionTime-before.ExecutionTime)/execs/1e3, "exec-us")
	b.ReportMetric(float64(after.Queue-before.Queue)/float64(b.N)/1e3, "queue-us")
	// Raw throughput at the batch size formed, between the rounds; and
	// the same ratio over the time the host let this machine run.
	b.ReportMetric(float64(raw.rows), "raw-batch")
	b.ReportMetric(rowsPerSec/(float64(rawRows)/rawTime.Seconds()), "of-raw")
	if ticks > 0 {
		b.ReportMetric(float64(stolen)/float64(ticks), "stolen")
		b.ReportMetric((float64(b.N)/batcherRan.Seconds())/(float64(rawRows)/rawRan.Seconds()), "of-raw-ran")
	}
}

// cpuTicks returns, from /proc/stat, the CPU time the hypervisor took from
// this virtual machine (steal) and all the CPU time that passed, in ticks
// summed over its CPUs; ok is false where there is no /proc/stat. On a
// shared host the steal comes and goes within a second and takes up to a
// third of the time: a throughput measured over wall-clock time alone then
// says more about the neighbours than about the code.
func cpuTicks() (steal, total int64, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		// user nice system idle iowait irq softirq steal; guest time
		// (the fields after) is already counted in user and nice.
		if i < 8 {
			total += v
		}
		if i == 7 {
			steal = v
		}
	}
	return steal, total, true
}
