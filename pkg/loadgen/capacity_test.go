package loadgen

import (
	"fmt"
	"testing"
)

func TestParseRates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"500", "[500]"},
		{"100:500:100", "[100 200 300 400 500]"},
		{"100:450:100", "[100 200 300 400]"},
		{"0.5:1.5:0.5", "[0.5 1 1.5]"},
	} {
		got, err := ParseRates(tc.in)
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("%q: %v %v, want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "-5", "abc", "1:2", "500:100:10", "1:1000000:1"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// FindMax against servers that hold up to a known capacity.
func TestFindMax(t *testing.T) {
	for _, tc := range []struct {
		capacity, start, max float64
		want                 float64 // within 5%
	}{
		{1234, 100, 0, 1234},
		{1234, 5000, 0, 1234},    // the start is already too much: search below
		{1e6, 100, 50000, 50000}, // capped by max
		{80, 100, 0, 80},         // just below the start
		{100, 100, 0, 100},       // exactly the start holds
	} {
		probes := 0
		got, tried, err := FindMax(tc.start, tc.max, 0.05, func(rate float64) (bool, error) {
			probes++
			return rate <= tc.capacity, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got > tc.want || got < 0.95*tc.want {
			t.Errorf("capacity %v from %v: found %v after %v", tc.capacity, tc.start, got, tried)
		}
		if probes > 20 {
			t.Errorf("capacity %v: %d probes, a search needs far fewer", tc.capacity, probes)
		}
	}
}
