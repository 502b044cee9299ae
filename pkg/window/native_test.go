package window

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func read(t *testing.T, h prometheus.Histogram) Histogram {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return FromProto(m.GetHistogram())
}

// A client_golang histogram with native buckets reads back as fine bins,
// each observation in the bin its value falls in, and a window of two
// reads holds only what was observed between them.
func TestNativeBinsHoldTheObservations(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: []float64{0.01, 0.1}, NativeHistogramBucketFactor: 1.05})
	first := []float64{0.0012, 0.0012, 0.005, 0.02}
	for _, v := range first {
		h.Observe(v)
	}
	before := read(t, h)
	if before.Native == nil || before.Native.Schema != 4 {
		t.Fatalf("native %+v, want schema 4 (a factor of 2^(1/16) ≤ 1.05)", before.Native)
	}
	later := []float64{0.0051, 0.0051, 0.0051, 0.3, 0}
	for _, v := range later {
		h.Observe(v)
	}
	now := read(t, h)
	d := Delta(now, before)
	bins := d.Bins()
	if Observations(bins) != uint64(len(later)) || d.Count != uint64(len(later)) {
		t.Fatalf("window bins %+v", bins)
	}
	for _, v := range later {
		found := false
		for _, b := range bins {
			if (v > b.Lower || v == 0 && b.Lower == 0) && v <= b.Upper {
				found = true
				if b.Upper/b.Lower > 1.05 && b.Lower > 0 {
					t.Errorf("bin %+v wider than 5%%", b)
				}
			}
		}
		if !found {
			t.Errorf("%v in no bin of %+v", v, bins)
		}
	}
	if b, ok := Ranked(bins, 4); !ok || !(0.0051 > b.Lower && 0.0051 <= b.Upper) {
		t.Errorf("4th of %v: %+v", later, b)
	}
	if b, ok := Ranked(bins, 5); !ok || !(0.3 > b.Lower && 0.3 <= b.Upper) {
		t.Errorf("5th: %+v", b)
	}
	if _, ok := Ranked(bins, 6); ok {
		t.Error("a 6th of 5")
	}

	// The rollout state keeps histograms as JSON: the native buckets too.
	data, _ := json.Marshal(now)
	var back Histogram
	if err := json.Unmarshal(data, &back); err != nil || Observations(Delta(back, before).Bins()) != 5 {
		t.Fatalf("through JSON: %v %s", err, data)
	}
	// A start read without native buckets cannot be subtracted from: the
	// classic buckets are what is left.
	before.Native = nil
	if d := Delta(now, before); d.Native != nil || Observations(d.Bins()) != 5 || d.Bins()[len(d.Bins())-1].Upper != math.Inf(1) {
		t.Fatalf("classic fallback %+v", d.Bins())
	}
}
