package queueapi

import (
	"context"
	"testing"
	"testing/synctest"
)

// The budget lets a fetch take as many requests as the room left holds
// at the largest body seen, at least one; none while the bodies held fill
// it, until one is given back.
func TestBodyBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBodyBudget(100)
		if got := b.room(64); got != 64 {
			t.Fatalf("no body seen yet: room %d, want 64", got)
		}
		first := b.take(30)
		if got := b.room(64); got != 2 { // 70 left, bodies of 30
			t.Fatalf("30 held of 100, bodies of 30: room %d, want 2", got)
		}
		second := b.take(80)
		if got := b.room(64); got != 1 {
			t.Fatalf("over the budget: room %d, want at least 1", got)
		}
		waited := make(chan bool, 1)
		go func() { waited <- b.wait(t.Context()) }()
		synctest.Wait()
		select {
		case <-waited:
			t.Fatal("a fetch went on with the budget full")
		default:
		}
		b.give(second)
		if ok := <-waited; !ok {
			t.Fatal("the wait failed after a body was given back")
		}
		b.give(first)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if !newBodyBudget(0).wait(ctx) || newBodyBudget(0).room(8) != 8 {
			t.Fatal("a budget of 0 bounded something")
		}
	})
}
