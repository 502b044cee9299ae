package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/infer-serving/infer/pkg/core"
)

// Bodies are charged to the API's budget as their buffers grow: one that
// would pass it is refused with 503 until what is held is given back.
func TestBodyBudgetBoundsTheBytesHeld(t *testing.T) {
	budget := &bodyBudget{max: 3000}
	body := bytes.Repeat([]byte("x"), 1500)
	var first, second int64
	if _, err := readBody(bytes.NewReader(body), int64(len(body)), 1<<20, nil, budget, &first); err != nil {
		t.Fatal(err)
	}
	if first < 1500 || budget.held.Load() != first {
		t.Fatalf("charged %d, budget holds %d: want the buffer's capacity, at least 1500", first, budget.held.Load())
	}
	_, err := readBody(bytes.NewReader(body), int64(len(body)), 1<<20, nil, budget, &second)
	if !errors.Is(err, core.ErrBodyBudget) || core.Status(err) != http.StatusServiceUnavailable {
		t.Fatalf("a second body past the budget: %v (status %d), want ErrBodyBudget and 503", err, core.Status(err))
	}
	budget.give(second) // what the refused read had taken
	budget.give(first)
	if budget.held.Load() != 0 {
		t.Fatalf("budget holds %d after everything was given back", budget.held.Load())
	}
	var third int64
	if _, err := readBody(bytes.NewReader(body), int64(len(body)), 1<<20, nil, budget, &third); err != nil {
		t.Fatalf("after the first was given back: %v", err)
	}

	// A body announced large and sent slowly is charged what arrived.
	var slow int64
	budget = &bodyBudget{max: 1 << 20}
	if _, err := readBody(bytes.NewReader([]byte("{")), 64<<20, 64<<20, nil, budget, &slow); err == nil {
		t.Fatal("a body cut short read without an error")
	}
	if slow > bodyChunk {
		t.Fatalf("charged %d bytes for a body of which 1 arrived, want at most %d", slow, bodyChunk)
	}
}
