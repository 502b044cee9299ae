package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/lograte"
	"github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Model is one loaded version of a model: its sessions, its queue and
// batcher, and its counters. It is safe for concurrent use.
type Model struct {
	meta      Metadata // the graph's inputs and outputs
	served    Metadata // what clients see: meta, with text in place of token inputs
	text      *textFront
	cfg       Config // with defaults applied
	device    Device // the device the sessions run on
	batcher   *batcher
	admission *admission // nil for a text generator
	instances []executor
	isolation string // IsolationProcess or IsolationNone
	hosts     *hostHealth
	closing   chan struct{}   // closed when Close begins
	failures  lograte.Limiter // logFailure's
	inputIdx  map[string]int
	outputIdx map[string]int
	stacked   bool // every input and output has a dynamic first dimension
	log       *slog.Logger
	cache     *responseCache      // nil without one
	gen       TextGenerator       // a text generator's engine, else nil
	decoder   *Decoder            // a text generator's, else nil
	composite Composite           // a pipeline's or router's, else nil
	labels    map[string][]string // class labels by output (config.yaml labels)
	quality   *drift.Monitor      // nil unless monitor.sample is set
	// perString caches a text model by string: its only input is text
	// and every output row has a fixed size.
	perString bool
	// maxRequestBytes bounds one request's input bytes (0: no bound).
	maxRequestBytes int64

	loadDuration   time.Duration
	warmupDuration time.Duration

	stats     counters
	pool      sync.Pool // of *pending
	workers   sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

// Closed reports whether the model version was closed (unloaded).
func (m *Model) Closed() bool { return m.closed.Load() }

// LoadModel creates a model version from ONNX bytes: it reads the graph's
// inputs and outputs, applies and checks cfg, creates cfg.Instances sessions,
// warms each one up, and starts their workers. The model is ready for
// Infer when LoadModel returns.
func LoadModel(name string, version int64, onnx []byte, cfg Config, opts LoadOptions) (m *Model, err error) {
	// A panic while loading (a bug the model file found) fails this load,
	// with its stack logged, and ends the hosts it had started.
	var started *Model
	defer func() {
		if v := recover(); v != nil {
			if _, fault := v.(interface{ Addr() uintptr }); fault {
				// A mapped file cut shorter (modelBytes): not a bug.
				if started != nil {
					started.closeInstances()
				}
				m, err = nil, fmt.Errorf("load model %q version %d: the model file changed while it loaded (cut shorter)", name, version)
				return
			}
			slog.Error("model load panicked", "model", name, "version", version, "panic", v, "stack", string(debug.Stack()))
			if started != nil {
				started.closeInstances()
			}
			m, err = nil, fmt.Errorf("load model %q version %d: panic: %v", name, version, v)
		}
	}()
	if LoadedRuntime() == nil {
		return nil, errors.New("ONNX Runtime is not loaded: call InitRuntime first")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("model", name, "version", version)
	start := time.Now()

	// The graph's interface is read from the file's bytes, not through the
	// runtime: a file that would crash the runtime must reach it only in a
	// model host.
	it, err := onnxgraph.ReadInterface(onnx)
	if err != nil {
		return nil, err
	}
	meta := Metadata{Name: name, Version: version, Platform: Platform}
	if meta.Inputs, err = specsFromPorts(it.Inputs); err != nil {
		return nil, fmt.Errorf("input %w", err)
	}
	if meta.Outputs, meta.Unserved, err = outputSpecs(it.Outputs); err != nil {
		return nil, fmt.Errorf("output %w", err)
	}
	if err := distinctPorts(it); err != nil {
		return nil, err
	}
	for _, u := range meta.Unserved {
		log.Warn("output not served", "output", u.Name, "type", u.ONNXType, "reason", u.Reason)
	}
	canBatch := batchable(meta.Inputs, meta.Outputs)
	if cfg.Device == "" {
		cfg.Device = opts.Device
	}
	if cfg.Isolation == "" {
		cfg.Isolation = opts.Isolation
	}
	cfg = cfg.withDefaults(canBatch)
	if err := cfg.validate(canBatch); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dev, _ := ParseDevice(cfg.Device) // validated above
	if cfg.Generation != nil {
		return loadGenerator(meta, onnx, cfg, opts, log, start)
	}

	served := meta
	var text *textFront
	if cfg.Tokenizer != nil {
		if text, err = newTextFront(*cfg.Tokenizer, meta, opts.ReadFile); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		served.Inputs = text.served(meta.Inputs)
	}

	m = &Model{
		meta:      meta,
		served:    served,
		text:      text,
		cfg:       cfg,
		batcher:   newBatcher(cfg),
		admission: newAdmission(cfg),
		inputIdx:  indexByName(meta.Inputs),
		outputIdx: indexByName(meta.Outputs),
		stacked:   stacked(meta, cfg),
		log:       log,
		isolation: cfg.Isolation,
		hosts:     &hostHealth{limit: DefaultCrashLimit, window: DefaultCrashWindow},
		closing:   make(chan struct{}),
	}
	started = m
	m.stats.batchSizes = make([]atomic.Int64, max(*cfg.MaxBatchSize, 1)+1)
	m.maxRequestBytes = cfg.MaxRequestBytes
	if m.maxRequestBytes == 0 && *cfg.MaxBatchSize > 0 {
		// Twice a full batch: a request one row over max_batch_size still
		// gets the error that names the rows.
		m.maxRequestBytes = 2 * fullBatchBytes(served.Inputs, *cfg.MaxBatchSize)
	}
	if cfg.Cache.Enabled {
		if m.cache, err = newResponseCache(cfg.Cache); err != nil {
			return nil, fmt.Errorf("config: cache: %w", err)
		}
		m.perString = text != nil && len(served.Inputs) == 1 && fullBatchBytes(meta.Outputs, 1) > 0
	}
	var pad []*int64
	if text != nil {
		pad = make([]*int64, len(meta.Inputs))
		padID, zero := text.tok.PadID(), int64(0)
		pad[text.ids], pad[text.mask] = &padID, &zero
		m.batcher.ragged = make([]bool, len(meta.Inputs))
		m.batcher.ragged[text.ids], m.batcher.ragged[text.mask] = true, true
	}
	for range cfg.Instances {
		var in executor
		var used Device
		if m.isolation == IsolationProcess {
			var h *hostedInstance
			h, used, err = newHostedInstance(m, onnx, cfg, dev, opts)
			if h != nil {
				h.pad, in = pad, h
				opts.modelSum = &h.model.sum // the next instances' hosts must load the same
			}
		} else {
			var i *instance
			i, used, err = newInstance(onnx, meta, cfg, dev, log)
			if i != nil {
				i.pad, in = pad, i
			}
		}
		if err != nil {
			m.closeInstances()
			return nil, err
		}
		m.device = used
		m.instances = append(m.instances, in)
	}
	m.loadDuration = time.Since(start)

	if err := m.warmup(opts.loadTimeout()); err != nil {
		m.closeInstances()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if err := m.startMonitor(opts); err != nil {
		m.closeInstances()
		return nil, err
	}
	for _, in := range m.instances {
		m.workers.Add(1)
		go m.work(in)
	}
	log.Info("model loaded", "device", m.device.String(), "instances", len(m.instances), "isolation", m.isolation,
		"max_batch_size", *cfg.MaxBatchSize, "load", m.loadDuration, "warmup", m.warmupDuration)
	return m, nil
}

// fullBatchBytes returns the input bytes of a batch of maxBatch rows (one
// row for a model that does not batch), or 0 when some input's size per
// row is not fixed (strings, or a dynamic dimension past the first).
func fullBatchBytes(inputs []TensorSpec, maxBatch int) int64 {
	var total int64
	for _, in := range inputs {
		size := int64(in.DataType.Size())
		if size == 0 {
			return 0
		}
		dims := make([]int64, len(in.Shape))
		for i, d := range in.Shape {
			switch {
			case i == 0 && d < 0:
				dims[i] = int64(max(maxBatch, 1))
			case d < 0:
				return 0
			default:
				dims[i] = d
			}
		}
		n, err := tensor.ElementsChecked(dims)
		if err == nil {
			n, err = tensor.ByteSize(n, in.DataType)
		}
		if err != nil || n > math.MaxInt64/4-total {
			return 0 // sizes a file declares past any memory: no bound here
		}
		total += n
	}
	return total
}

func indexByName(specs []TensorSpec) map[string]int {
	m := make(map[string]int, len(specs))
	for i, s := range specs {
		m[s.Name] = i
	}
	return m
}

// work is an instance's worker: it executes batches until the model is
// closed and its queue drained.
//
// Having answered a batch of several requests, the worker yields its P
// (Go's scheduling slot) before it takes the next batch. Answering makes
// the callers runnable on the worker's own P; yielding lets them run there
// at once, send their next requests and wait again, all on this thread,
// and the worker comes back to a full queue. Without the yield the worker
// goes straight back into the runtime's Run, a cgo call that keeps the P
// until the scheduler's monitor takes it back, and the callers wait for
// that or for another thread, woken through the kernel, to steal them. A
// lone request is answered by a worker that then waits for work, which
// hands the P over just the same, so it is not yielded after; nor is a
// worker whose next batch is already queued. Gosched puts the worker on
// the runtime's global run queue, which a busy P looks at once in 61
// turns: under a flood of shed requests the worker waited there half the
// time (1.02 s of a 2 s execution trace, mlp with max_queue_size 32 and
// 1,024 connections), and answered 7k requests a second of the 26k the
// model runs. So the worker yields only when its callers are about all
// there is to run (yielder): with many more goroutines runnable, the
// callers run soon enough without it, and the worker takes the next batch
// at once.
//
// The worker leaves GOMAXPROCS alone. Raising it above the core count, so
// that callers had a P while the instances ran, put more threads than
// cores in line for the CPU: each garbage collection's stop then left an
// instance's worker waiting milliseconds for a thread. On mlp with 64
// callers and two single-threaded instances the yield and GOMAXPROCS at
// the core count reach 0.82 to 1.06 of the runtime's own throughput
// (median 0.88 in 28 runs), where holding an OS thread per worker and one
// more P per instance reached 0.62 to 0.74 (median 0.67 in 11).
func (m *Model) work(in executor) {
	defer m.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*pending
	var yield yielder
	for {
		var err error
		batch, err = m.batcher.next(batch, timer, in.died())
		if err != nil {
			return
		}
		if len(batch) == 0 { // its model host died while idle
			in.revive()
			continue
		}
		m.run(in, batch)
		if len(batch) > 1 && !m.batcher.ready() && yield.worthIt(len(batch)) {
			runtime.Gosched()
		}
		clear(batch) // drop references to answered requests
	}
}

// run executes one batch and answers each of its requests.
//
// When the runtime refuses the batch or its model host dies under it,
// the batch's requests are run again once each, alone: one poison
// request (a token id past the vocabulary, an input that kills the
// runtime) then fails by itself while its neighbours are answered, at
// the cost of a run per request only when a batch fails. A request that
// was alone is never run again: it is the poison, and retrying it would
// only fail, or kill the host, once more. Nor is one whose caller has
// stopped waiting, or whose deadline has passed: no one would read its
// answer. A batch whose host was killed as hung is not run again at all:
// each run of a request that hangs would cost the execution timeout and
// a host, and a few of them in a row the version (its crash limit).
func (m *Model) run(in executor, batch []*pending) {
	resps := make([]Response, len(batch)) // one allocation for the batch
	ex, err := in.execute(batch, resps)
	var died *HostDiedError
	hostDied := errors.As(err, &died)
	if len(batch) > 1 && err != nil && !errors.Is(err, ErrClosed) && !(hostDied && died.Hung) {
		if hostDied {
			m.log.Warn("model host died under a batch: running its requests again one by one", "requests", len(batch), "cause", died.Cause)
		} else {
			m.logFailure("the runtime refused a batch: running its requests again one by one", len(batch), err)
		}
		now := time.Now()
		for _, p := range batch {
			if p.gone.Load() || !p.deadline.IsZero() && !now.Before(p.deadline) {
				m.stats.failure.Add(1)
				p.answer(nil, fmt.Errorf("model %q version %d: %w", m.meta.Name, m.meta.Version, err))
				continue
			}
			m.run(in, []*pending{p})
		}
		return
	}
	if err != nil {
		ex.end = time.Now()
	}
	start, end := ex.start, ex.end
	elapsed, rows := end.Sub(start), ex.rows

	m.stats.executions.Add(1)
	m.stats.rows.Add(rows)
	m.stats.executionNanos.Add(int64(elapsed))
	m.stats.lastInference.Store(end.UnixNano())
	if rows < int64(len(m.stats.batchSizes)) {
		m.stats.batchSizes[rows].Add(1)
	}
	n := int64(len(batch))
	m.stats.inputNanos.Add(n * int64(ex.input))
	m.stats.inferNanos.Add(n * int64(ex.infer))
	m.stats.outputNanos.Add(n * int64(ex.output))
	// The batch's counts are summed and added once, before any caller is
	// answered (a caller may read them as soon as it has its answer): per
	// request, the instances' workers would contend on the same counters.
	var queuedSum, latencySum time.Duration
	for _, p := range batch {
		queuedSum += start.Sub(p.enqueued)
		latencySum += end.Sub(p.enqueued)
	}
	m.stats.queueNanos.Add(int64(queuedSum))
	if err != nil {
		m.logFailure("execution failed", int(rows), err)
		m.stats.failure.Add(n)
		err = fmt.Errorf("model %q version %d: %w", m.meta.Name, m.meta.Version, err)
		for _, p := range batch {
			p.answer(nil, err)
		}
		return
	}
	m.stats.success.Add(n)
	m.stats.successNanos.Add(int64(latencySum))
	for k, p := range batch {
		resp := &resps[k]
		resp.ModelName, resp.ModelVersion = m.meta.Name, m.meta.Version
		resp.Timing.Set(profile.Queue, start.Sub(p.enqueued))
		resp.Timing.Set(profile.Infer, elapsed)
		resp.Timing.BatchSize = int(rows)
		p.answer(resp, nil)
	}
}

// logFailure logs a failed execution, at most once a second for the
// version, saying how many it left out since: a client sending inputs the
// runtime refuses, as fast as it can, must not fill the log.
func (m *Model) logFailure(msg string, rows int, err error) {
	if n, ok := m.failures.Allow(); ok {
		m.log.Error(msg, "rows", rows, "err", err, "unlogged_since", n)
	}
}

// Metadata returns the model's name, version, inputs and outputs as
// clients see them (a text input in place of the token inputs it feeds).
func (m *Model) Metadata() Metadata { return m.served }

// GraphMetadata returns the inputs and outputs of the model's graph.
func (m *Model) GraphMetadata() Metadata { return m.meta }

// Unavailable returns why the version stopped serving while loaded (its
// hosts crashed too often), or "" while it serves.
func (m *Model) Unavailable() string { return m.hosts.downReason() }

// Isolation returns where the version's sessions run: IsolationProcess or
// IsolationNone.
func (m *Model) Isolation() string { return m.isolation }

// Config returns the configuration in effect, defaults applied.
func (m *Model) Config() Config { return m.cfg }

// Device returns the device the model's sessions run on.
func (m *Model) Device() Device { return m.device }

// LoadDuration is the time to read the graph and create the sessions;
// WarmupDuration the time of the warm-up runs after it.
func (m *Model) LoadDuration() time.Duration { return m.loadDuration }

// WarmupDuration returns the time the warm-up runs took.
func (m *Model) WarmupDuration() time.Duration { return m.warmupDuration }

// Close stops accepting requests, answers every request already queued,
// and releases the sessions. It is safe to call more than once.
func (m *Model) Close() { m.closeWithin(closeGrace) }

// closeWithin is Close, giving the batches running in the version's hosts
// at most grace before it kills them.
func (m *Model) closeWithin(grace time.Duration) {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.closing)
		if m.gen != nil {
			m.gen.Drain(grace) // what is generating is answered, as a batcher's queue is
			m.decoder.Close()
		}
		if m.composite != nil {
			m.composite.Close()
		}
		if m.cache != nil {
			m.cache.entries.InvalidateAll() // its memory goes with the version
		}
		m.batcher.close()
		m.stopLoads()
		if !m.waitWorkers(grace) {
			// A run in process cannot be stopped: its session is released
			// when it ends, and Close returns now.
			go func() {
				m.workers.Wait()
				m.closeInstances()
				m.quality.Close()
			}()
			return
		}
		m.closeInstances()
		m.quality.Close()
	})
}

// stopLoads kills the hosts still loading a restart when nothing is
// queued for them: a close need not wait for a load that would serve
// nothing. With requests queued they have closeWithin's grace.
func (m *Model) stopLoads() {
	if n, _ := m.batcher.depth(); n > 0 {
		return
	}
	loading := 0
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); ok && h.doing() == hostLoading {
			h.kill()
			loading++
		}
	}
	if loading > 0 {
		m.log.Info("model hosts loading at close, with nothing queued: stopped", "loading", loading)
	}
}

// waitWorkers waits for the workers to answer what is queued; after
// grace it kills the version's hosts, so that a hung one cannot hold an
// unload or a shutdown (its batch is answered with the error), and waits
// for their workers. Instances in process cannot be killed: it reports
// false, their workers still running, when they outlast grace.
func (m *Model) waitWorkers(grace time.Duration) bool {
	done := make(chan struct{})
	go func() { m.workers.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
	}
	select {
	case <-done: // a grace of 0 raced the workers' end
		return true
	default:
	}
	if len(m.instances) == 0 { // a generator's: its engine drained already
		<-done
		return true
	}
	hosted, running, loading := false, 0, 0
	for _, in := range m.instances {
		if h, ok := in.(*hostedInstance); ok {
			switch h.doing() {
			case hostRunning:
				running++
			case hostLoading:
				loading++
			}
			h.kill()
			hosted = true
		}
	}
	if !hosted {
		m.log.Warn("batches still running in process at close: their sessions are released when they end", "after", grace)
		return false
	}
	switch {
	case running > 0:
		m.log.Warn("model hosts still running batches at close: killed", "after", grace, "running", running, "loading", loading)
	case loading > 0:
		m.log.Info("model hosts still loading at close: stopped", "after", grace, "loading", loading)
	}
	<-done
	return true
}

func (m *Model) closeInstances() {
	for _, in := range m.instances {
		in.close()
	}
}
