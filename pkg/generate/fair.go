package generate

// shares counts the sequences each group has admitted (running or
// prefilled and waiting for a slot): what fairest weighs the waiting by.
func shares(admitted ...[]*sequence) map[uint64]int {
	out := map[uint64]int{}
	for _, list := range admitted {
		for _, s := range list {
			out[s.req.Group]++
		}
	}
	return out
}

// fairest returns the index in waiting (in arrival order) of the sequence
// to admit next: the first of the group with the fewest sequences
// admitted. A request's sequences are served in turn with every other
// request's, as a fair queue serves flows, rather than all before the
// requests behind them; with one sequence a request it is arrival order.
func fairest(waiting []*sequence, share map[uint64]int) int {
	best := 0
	if share[waiting[0].req.Group] == 0 {
		return 0
	}
	for i, s := range waiting {
		if share[s.req.Group] < share[waiting[best].req.Group] {
			best = i
			if share[s.req.Group] == 0 {
				break // none has fewer: the earliest such
			}
		}
	}
	return best
}
