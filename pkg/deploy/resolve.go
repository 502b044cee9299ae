package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ResolveOrLoad is Resolve, and when no new version is ready, a load of
// the model to pick up a newer version folder, but only when the server's
// repository holds one and check accepts the rollout it would start
// (check is given the target with that version as the candidate). A load
// replaces the model's loaded versions, zeroing their figures: a rollout
// that cannot start, or has nothing new to start with, never reloads a
// live model. loading, when not nil, is told before a load.
func (c *Client) ResolveOrLoad(ctx context.Context, want Target, check func(Target) error, loading func(model string, version int64)) (Target, error) {
	t, err := c.Resolve(ctx, want)
	if !errors.Is(err, ErrNoCandidate) {
		return t, err
	}
	f, ferr := c.Folders(ctx, t.Model)
	if ferr != nil {
		return t, errors.Join(err, ferr)
	}
	var next int64
	switch news := f.Unloaded(t.Stable); {
	case want.Candidate != 0 && slices.Contains(f.Folders, want.Candidate):
		next = want.Candidate
	case want.Candidate == 0 && len(news) > 0:
		next = news[len(news)-1]
	default:
		return t, fmt.Errorf("%w; the repository holds no newer version folder either (folders: %v), so nothing was loaded", err, f.Folders)
	}
	if check != nil {
		try := t
		try.Candidate = next
		if err := check(try); err != nil {
			return t, fmt.Errorf("%w (version %d's folder was not loaded)", err, next)
		}
	}
	if loading != nil {
		loading(t.Model, next)
	}
	if err := c.Load(ctx, t.Model); err != nil {
		return t, err
	}
	return c.Resolve(ctx, want)
}
