package loadgen

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// Zipf's probabilities follow 1/k^s, and its draws follow its
// probabilities: a draw is a function of the seed and its number, so the
// counts below are the same on every run.
func TestZipfDrawsFollowTheLaw(t *testing.T) {
	for _, tc := range []struct {
		n    int
		s    float64
		want []float64
	}{
		{1, 1, []float64{1}},
		{3, 0, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		{3, 1, []float64{6.0 / 11, 3.0 / 11, 2.0 / 11}}, // 1, 1/2, 1/3 over 11/6
		{4, 2, []float64{144.0 / 205, 36.0 / 205, 16.0 / 205, 9.0 / 205}},
	} {
		z, err := NewZipf(tc.n, tc.s, 7)
		if err != nil {
			t.Fatal(err)
		}
		const draws = 200_000
		counts := make([]int, tc.n)
		for i := range uint64(draws) {
			counts[z.Rank(i)]++
		}
		for k, p := range tc.want {
			if math.Abs(z.P(k)-p) > 1e-12 {
				t.Errorf("n=%d s=%v: P(%d) = %v, want %v", tc.n, tc.s, k, z.P(k), p)
			}
			// Five standard deviations of a binomial count.
			if got, sd := float64(counts[k])/draws, math.Sqrt(p*(1-p)/draws); math.Abs(got-p) > 5*sd+1e-12 {
				t.Errorf("n=%d s=%v: rank %d drawn %.4f of the time, want %.4f", tc.n, tc.s, k, got, p)
			}
		}
	}
	a, _ := NewZipf(50, 1.1, 1)
	b, _ := NewZipf(50, 1.1, 2)
	same := 0
	for i := range uint64(1000) {
		if a.Rank(i) == b.Rank(i) {
			same++
		}
	}
	if same == 1000 {
		t.Error("two seeds drew the same 1,000 ranks")
	}
}

func TestZipfBadInput(t *testing.T) {
	for _, tc := range []struct {
		n    int
		s    float64
		want string
	}{
		{0, 1, "at least 1"},
		{3, -1, "want 0 (uniform) or more"},
		{3, math.NaN(), "want 0 (uniform) or more"},
	} {
		if _, err := NewZipf(tc.n, tc.s, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewZipf(%d, %v): %v, want %q", tc.n, tc.s, err, tc.want)
		}
	}
}

// --models entries: names as given, globs against the index in name order,
// each model once.
func TestExpandModels(t *testing.T) {
	index := func() ([]string, error) { return []string{"m002", "m000", "m001", "m000", "other"}, nil }
	for _, tc := range []struct {
		in   []string
		want []string
		err  string
	}{
		{[]string{"b", "a"}, []string{"b", "a"}, ""},
		{[]string{"m00*"}, []string{"m000", "m001", "m002"}, ""},
		{[]string{"m001", "m*", "other"}, []string{"m001", "m000", "m002", "other"}, ""},
		{[]string{"x*"}, nil, "matches none of the server's 4 models"},
		{[]string{"[m"}, nil, "syntax error"},
		{[]string{" ", ""}, nil, "names no model"},
	} {
		got, err := expandModels(tc.in, index)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	// Plain names never read the index.
	if _, err := expandModels([]string{"a"}, func() ([]string, error) { return nil, errors.New("unread") }); err != nil {
		t.Error(err)
	}
}
