package runner

import (
	"sync/atomic"
	"time"
)

// counters are the model's cumulative statistics.
type counters struct {
	success, failure atomic.Int64
	executions, rows atomic.Int64
	lastInference    atomic.Int64 // Unix nanoseconds
	// Per request, as Triton's inference_stats count them: a request
	// running in a batch is charged the batch's whole compute phases.
	successNanos, queueNanos            atomic.Int64
	inputNanos, inferNanos, outputNanos atomic.Int64
	executionNanos                      atomic.Int64 // per execution
	batchSizes                          []atomic.Int64
}

// Stats is a snapshot of a model's cumulative statistics. Durations are
// summed over requests (Triton's inference_stats), except ExecutionTime,
// summed over executions.
type Stats struct {
	Success    int64 // requests answered with outputs
	Failure    int64 // requests answered with an error after being queued
	Executions int64 // batches run
	Rows       int64 // rows run, over all batches (Triton's inference_count)
	// LastInference is when the last execution finished.
	LastInference time.Time
	// SuccessTime is the successful requests' time from queueing to answer.
	SuccessTime   time.Duration
	Queue         time.Duration
	ComputeInput  time.Duration
	ComputeInfer  time.Duration
	ComputeOutput time.Duration
	// ExecutionTime is the instances' busy time: the sum of executions.
	ExecutionTime time.Duration
	// BatchSizes[n] is the number of executions that held n rows.
	BatchSizes []int64
	// QueueLength is the number of requests waiting now (for admission,
	// then in the batcher's queue), and OldestQueued how long the oldest
	// of them has waited.
	QueueLength  int
	OldestQueued time.Duration
	// Cache holds the response cache's counts, when there is one.
	Cache *CacheStats
	// HostCrashes counts the model hosts that died (memory faults
	// included), HostMemoryFaults those that went over resources.memory,
	// and HostRestarts the hosts started again after one died.
	HostCrashes, HostMemoryFaults, HostRestarts int64
}

// Stats returns a snapshot of the model's counters.
func (m *Model) Stats() Stats {
	s := Stats{
		Success:       m.stats.success.Load(),
		Failure:       m.stats.failure.Load(),
		Executions:    m.stats.executions.Load(),
		Rows:          m.stats.rows.Load(),
		SuccessTime:   time.Duration(m.stats.successNanos.Load()),
		Queue:         time.Duration(m.stats.queueNanos.Load()),
		ComputeInput:  time.Duration(m.stats.inputNanos.Load()),
		ComputeInfer:  time.Duration(m.stats.inferNanos.Load()),
		ComputeOutput: time.Duration(m.stats.outputNanos.Load()),
		ExecutionTime: time.Duration(m.stats.executionNanos.Load()),
		BatchSizes:    make([]int64, len(m.stats.batchSizes)),
	}
	if m.cache != nil {
		cs := m.cache.stats()
		s.Cache = &cs
	}
	for i := range m.stats.batchSizes {
		s.BatchSizes[i] = m.stats.batchSizes[i].Load()
	}
	if ns := m.stats.lastInference.Load(); ns != 0 {
		s.LastInference = time.Unix(0, ns)
	}
	s.HostCrashes, s.HostMemoryFaults, s.HostRestarts = m.hosts.counts()
	n, oldest := m.batcher.depth()
	s.QueueLength = n
	if n > 0 {
		s.OldestQueued = time.Since(oldest)
	}
	// Those waiting for admission are in the queue too, and came first.
	if w, age := m.admission.waiting(); w > 0 {
		s.QueueLength += w
		s.OldestQueued = max(s.OldestQueued, age)
	}
	return s
}
