package tensor

import "slices"

// TopK returns the indices of row's k largest values, largest first,
// equal values by lower index; order is scratch space of len(row), and
// the result is order[:k]. Where row holds NaNs the order is unspecified.
func TopK[T Number](row []T, k int, order []int) []int {
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case row[a] > row[b]:
			return -1
		case row[a] < row[b]:
			return 1
		}
		return 0
	})
	return order[:k]
}
