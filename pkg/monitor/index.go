package monitor

import (
	"math"
	"slices"

	"github.com/infer-serving/infer/pkg/protocol"
)

// withIndex gives each row of server its entry in the server's
// repository index, and adds a row for each version the index holds and
// the metrics do not (a server that exports nothing for a version it has
// not loaded), figures unknown, so that every version the repository
// knows is shown, loaded or not. Rows stay in Keys' order.
func withIndex(rows []Row, server string, index []protocol.IndexEntry) []Row {
	if len(index) == 0 {
		return rows
	}
	at := make(map[Key]int, len(rows))
	for i, r := range rows {
		at[r.Key] = i
	}
	added := false
	for i := range index {
		e := &index[i]
		k := Key{Server: server, Model: e.Name, Version: e.Version}
		if j, ok := at[k]; ok {
			rows[j].Index = e
			continue
		}
		rows = append(rows, Row{Figures: unknown(k, e.State == stateReady), Index: e})
		added = true
	}
	if added {
		slices.SortStableFunc(rows, func(a, b Row) int {
			switch {
			case a.Key.less(b.Key):
				return -1
			case b.Key.less(a.Key):
				return 1
			}
			return 0
		})
	}
	return rows
}

// stateReady is the repository index's state of a version that serves.
const stateReady = "READY"

// unknown is the figures of a version with no metrics: none measured.
func unknown(k Key, ready bool) Figures {
	f := Figures{Key: k, Ready: ready, Errors: map[string]float64{}, Rate: math.NaN(), ErrorRate: math.NaN(),
		P50: math.NaN(), P95: math.NaN(), P99: math.NaN(), MeanBatch: math.NaN(), CacheHitRate: math.NaN(), CostPer1k: math.NaN()}
	for _, p := range BudgetPhases {
		f.Budget[p] = math.NaN()
	}
	return f
}
