package modelhost

import (
	"reflect"
	"testing"
	"time"
)

// A Run and a Result read back as they were written.
func TestWireRoundTrip(t *testing.T) {
	run := Run{RegionSize: 1 << 20, Inputs: []Tensor{{Shape: []int64{2, 784}, Offset: 0, Length: 6272}, {Shape: nil, Offset: 6336, Length: 4}},
		Outputs: []Tensor{{Shape: []int64{2, 10}, Offset: 6400, Length: 80}}}
	var got Run
	if err := DecodeRun(AppendRun(nil, &run), &got); err != nil || !reflect.DeepEqual(got, run) {
		t.Fatalf("run %+v (%v), want %+v", got, err, run)
	}
	res := Result{RegionSize: 1 << 21, Err: "", Input: time.Microsecond, Infer: time.Millisecond, Outputs: []Tensor{{Shape: []int64{2, 10}, Offset: 64, Length: 80}}}
	var back Result
	if err := DecodeResult(AppendResult(nil, &res), &back); err != nil || !reflect.DeepEqual(back, res) {
		t.Fatalf("result %+v (%v), want %+v", back, err, res)
	}
}

// Whatever bytes arrive, decoding never panics, never accepts a tensor
// outside the region, and allocates no more than the message spells.
func FuzzDecode(f *testing.F) {
	f.Add(AppendRun(nil, &Run{RegionSize: 4096, Inputs: []Tensor{{Shape: []int64{1, 4}, Offset: 0, Length: 16}}}))
	f.Add(AppendResult(nil, &Result{RegionSize: 4096, Err: "run: bad", Outputs: []Tensor{{Shape: []int64{3}, Offset: 64, Length: 12}}}))
	f.Add([]byte{opRun, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r Run
		if DecodeRun(msg, &r) == nil {
			check(t, r.RegionSize, r.Inputs, len(msg))
			check(t, r.RegionSize, r.Outputs, len(msg))
		}
		var res Result
		if DecodeResult(msg, &res) == nil {
			check(t, res.RegionSize, res.Outputs, len(msg))
		}
	})
}

func check(t *testing.T, region int64, ts []Tensor, n int) {
	t.Helper()
	dims := 0
	for _, x := range ts {
		if x.Offset < 0 || x.Length < 0 || x.Offset+x.Length > region {
			t.Fatalf("tensor %+v outside a %d-byte region", x, region)
		}
		dims += len(x.Shape)
	}
	if 8*dims > n {
		t.Fatalf("%d dimensions from %d bytes", dims, n)
	}
}
