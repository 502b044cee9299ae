package runner

import (
	"runtime"
	"runtime/metrics"
)

// runnableMetric is the runtime's count of goroutines ready to run and not
// running: an approximation, read under the scheduler's lock (about
// 150 ns).
const runnableMetric = "/sched/goroutines/runnable:goroutines"

// yielder decides whether an instance's worker yields its P after
// answering a batch (see Model.work). A yield helps when the callers it
// just woke are about all that is runnable: they run at once on its P,
// answer their clients and send their next requests before the worker
// takes its next batch. With many more goroutines runnable (a flood of
// connections on a saturated core), the yield only puts the worker at the
// back of the global run queue, behind them all, while its model idles:
// the callers are run in their turn without it. One worker owns a yielder.
type yielder struct {
	sample [1]metrics.Sample
}

// worthIt reports whether yielding after answering a batch of n callers
// would let mostly those callers run: the runnable goroutines are at most
// the callers, as many again, and one per P.
func (y *yielder) worthIt(n int) bool {
	if y.sample[0].Name == "" {
		y.sample[0].Name = runnableMetric
	}
	metrics.Read(y.sample[:])
	if y.sample[0].Value.Kind() != metrics.KindUint64 {
		return true // a runtime without the metric: yield, as before
	}
	return y.sample[0].Value.Uint64() <= uint64(2*n+runtime.GOMAXPROCS(0))
}
