package window

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func hist(counts ...uint64) Histogram {
	bounds := []float64{0.001, 0.01, 0.1, 1, math.Inf(1)}
	h := Histogram{}
	for i, c := range counts {
		h.Buckets = append(h.Buckets, Bucket{bounds[i], c})
	}
	h.Count = counts[len(counts)-1]
	return h
}

func TestQuantileInterpolatesAsPrometheusDoes(t *testing.T) {
	h := hist(0, 50, 90, 100, 100) // 50 in (1ms,10ms], 40 in (10ms,100ms], 10 in (100ms,1s]
	for _, tc := range []struct{ q, want float64 }{
		{0.5, 0.01},                     // the 50th falls at the top of the second bucket
		{0.25, 0.001 + 0.009*25.0/50.0}, // a quarter: halfway through (1ms,10ms]
		{0.9, 0.1},                      // the 90th: top of the third
		{0.99, 0.1 + 0.9*9.0/10.0},      // nine tenths into (100ms,1s]
	} {
		if got := h.Quantile(tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("q%.2f = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := hist(0, 0, 0, 0, 10).Quantile(0.5); got != 1 {
		t.Errorf("rank in +Inf: %v, want the highest finite bound 1", got)
	}
	if !math.IsNaN(hist(0, 0, 0, 0, 0).Quantile(0.5)) {
		t.Error("no observations must give NaN")
	}
}

func TestDeltaIsTheWindow(t *testing.T) {
	before := hist(10, 20, 30, 40, 40)
	now := hist(10, 70, 80, 90, 90) // the last 50 observations all in (1ms,10ms]
	d := Delta(now, before)
	if d.Count != 50 || d.Buckets[1].Count != 50 || d.Buckets[3].Count != 50 {
		t.Fatalf("delta %+v", d)
	}
	// The lifetime p99 is dragged by old slow requests; the window's is not.
	if d.Quantile(0.99) > 0.01 || now.Quantile(0.99) < 0.01 {
		t.Fatalf("window p99 %v, lifetime %v", d.Quantile(0.99), now.Quantile(0.99))
	}
}

// A server restart resets its counters: the new reading is the window.
func TestDeltaAcrossCounterReset(t *testing.T) {
	before := hist(100, 200, 300, 400, 400)
	restarted := hist(0, 5, 7, 8, 8)
	if d := Delta(restarted, before); d.Count != 8 || d.Buckets[1].Count != 5 {
		t.Fatalf("delta after reset %+v", d)
	}
	if got := CounterDelta(3, 1000); got != 3 {
		t.Fatalf("counter after reset: %v", got)
	}
	if got := CounterDelta(1010, 1000); got != 10 {
		t.Fatalf("counter: %v", got)
	}
}

func TestFromProto(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{0.01, 0.1}})
	for _, v := range []float64{0.005, 0.05, 0.05, 5} {
		h.Observe(v)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	got := FromProto(m.GetHistogram())
	if got.Count != 4 || len(got.Buckets) != 2 || got.Buckets[1].Count != 3 || math.Abs(got.Mean()-5.105/4) > 1e-12 {
		t.Fatalf("%+v", got)
	}
	if q := got.Quantile(0.99); q != 0.1 {
		t.Fatalf("rank past the last bound: %v", q)
	}
}

// A histogram writes its fields in snake_case, and reads them back, and
// also reads what earlier versions wrote (Go's field names), as rollout
// states saved before hold.
func TestHistogramJSON(t *testing.T) {
	h := Histogram{Count: 3, Sum: 0.5, Buckets: []Bucket{{UpperBound: 0.1, Count: 1}, {UpperBound: 1, Count: 3}},
		Native: &Native{Schema: 3, ZeroThreshold: 1e-9, ZeroCount: 1, Positive: map[int32]uint64{-20: 2}}}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"count":3,"sum":0.5,"buckets":[{"upper_bound":0.1,"count":1},{"upper_bound":1,"count":3}],"native":{"schema":3,"zero_threshold":1e-9,"zero_count":1,"positive":{"-20":2}}}`
	if string(b) != want {
		t.Fatalf("written as %s\nwant %s", b, want)
	}
	earlier := `{"Count":3,"Sum":0.5,"Buckets":[{"UpperBound":0.1,"Count":1},{"UpperBound":1,"Count":3}],"Native":{"Schema":3,"ZeroThreshold":1e-9,"ZeroCount":1,"Positive":{"-20":2}}}`
	for _, in := range []string{want, earlier} {
		var back Histogram
		if err := json.Unmarshal([]byte(in), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, h) {
			t.Fatalf("%s read as %+v (native %+v), want %+v", in, back, back.Native, h)
		}
	}
}
