package tensor

import (
	"slices"
	"testing"
)

func TestTopK(t *testing.T) {
	for _, c := range []struct {
		row  []int32
		k    int
		want []int
	}{
		{[]int32{1, 5, 10, 4}, 2, []int{2, 1}}, // Triton's classification example
		{[]int32{3, 7, 7, 1, 7}, 4, []int{1, 2, 4, 0}},
		{[]int32{-2, -1}, 2, []int{1, 0}},
		{[]int32{9}, 0, []int{}},
	} {
		if got := TopK(c.row, c.k, make([]int, len(c.row))); !slices.Equal(got, c.want) {
			t.Errorf("TopK(%v, %d) = %v, want %v", c.row, c.k, got, c.want)
		}
	}
}
