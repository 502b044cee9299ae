package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/protocol"
)

// Client speaks to a running server's admin API: rollouts, traffic
// policies and the repository index.
type Client struct {
	Base  string       // http://host:port
	Token string       // the admin bearer token; empty: none (a loopback server)
	HTTP  *http.Client // nil: one whose calls time out after DefaultTimeout
}

// Errors the client's answers can be tested for.
var (
	ErrNotFound    = errors.New("not found")               // a 404: no such model, or no rollout of it
	ErrNoCandidate = errors.New("no new version is ready") // Resolve found nothing to roll out
)

// defaultClient bounds every admin call of a Client given no HTTP client.
var defaultClient = &http.Client{Timeout: DefaultTimeout}

// DefaultTimeout bounds an admin call.
const DefaultTimeout = 30 * time.Second

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Base, "/")+path, body)
	if err != nil {
		return fmt.Errorf("server %q: %w", c.Base, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.HTTP
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s (is infer serve running, its admin API there? --admin-port or --admin-url names another): %w", c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		err := fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, msg)
		switch resp.StatusCode {
		case http.StatusNotFound:
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			err = fmt.Errorf("%w (give the server's admin token with --admin-token-file or $INFER_ADMIN_TOKEN)", err)
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

func rolloutPath(model string) string {
	return "/v2/admin/models/" + url.PathEscape(model) + "/rollout"
}

// Start begins a rollout of spec.Model.
func (c *Client) Start(ctx context.Context, spec Spec) (State, error) {
	return c.state(ctx, "POST", rolloutPath(spec.Model), spec)
}

// Rollout returns model's rollout, the last one if it has ended.
func (c *Client) Rollout(ctx context.Context, model string) (State, error) {
	return c.state(ctx, "GET", rolloutPath(model), nil)
}

// Command sends promote, abort or undo.
func (c *Client) Command(ctx context.Context, model, command string) (State, error) {
	return c.state(ctx, "POST", rolloutPath(model)+"/"+url.PathEscape(command), nil)
}

// state makes a call answered with a rollout's state, and checks it: an
// answer that is not one fails, naming what is wrong.
func (c *Client) state(ctx context.Context, method, path string, in any) (State, error) {
	var st State
	if err := c.do(ctx, method, path, in, &st); err != nil {
		return State{}, err
	}
	if err := st.Check(); err != nil {
		return State{}, fmt.Errorf("server %s answered %s %s with no rollout state it could have: %w", c.Base, method, path, err)
	}
	return st, nil
}

// Policy returns model's traffic policy (the server answers the default,
// all to the latest ready version, when none is set).
func (c *Client) Policy(ctx context.Context, model string) (Policy, error) {
	var p Policy
	err := c.do(ctx, "GET", "/v2/admin/models/"+url.PathEscape(model)+"/traffic", nil, &p)
	return p, err
}

// Load has the server (re)read model from its repository, picking up new
// version folders; the server keeps traffic where it was.
func (c *Client) Load(ctx context.Context, model string) error {
	return c.do(ctx, "POST", "/v2/repository/models/"+url.PathEscape(model)+"/load", nil, nil)
}

// VersionFolders are a model's version folders in the server's
// repository now, loaded or not, and those loaded and ready; both
// ascending.
type VersionFolders struct {
	Model   string  `json:"model"`
	Folders []int64 `json:"folders"`
	Ready   []int64 `json:"ready"`
}

// Unloaded returns the folders newer than after that are not loaded and
// ready: what a load of the model would bring.
func (f VersionFolders) Unloaded(after int64) []int64 {
	var out []int64
	for _, v := range f.Folders {
		if v > after && !slices.Contains(f.Ready, v) {
			out = append(out, v)
		}
	}
	return out
}

// Folders returns model's version folders on the server, loading nothing.
func (c *Client) Folders(ctx context.Context, model string) (VersionFolders, error) {
	var f VersionFolders
	err := c.do(ctx, "GET", "/v2/admin/models/"+url.PathEscape(model)+"/versions", nil, &f)
	return f, err
}

// IndexEntry is one model version of the repository index.
type IndexEntry = protocol.IndexEntry

// Index returns the server's repository index.
func (c *Client) Index(ctx context.Context) ([]IndexEntry, error) {
	var idx []IndexEntry
	err := c.do(ctx, "POST", "/v2/repository/index", nil, &idx)
	return idx, err
}

// Target is what a rollout command names, filled in from the server where
// left out.
type Target struct {
	Model     string
	Stable    int64 // the version serving now
	Candidate int64
}

// readyVersions returns each model's ready versions, ascending.
func readyVersions(idx []IndexEntry) map[string][]int64 {
	ready := map[string][]int64{}
	for _, e := range idx {
		if v, err := strconv.ParseInt(e.Version, 10, 64); err == nil && e.State == "READY" {
			ready[e.Name] = append(ready[e.Name], v)
		}
	}
	for _, vs := range ready {
		slices.Sort(vs)
	}
	return ready
}

func onlyModel(ready map[string][]int64) (string, error) {
	names := slices.Sorted(maps.Keys(ready))
	if len(names) != 1 {
		return "", fmt.Errorf("the server has %d ready models %v: name one with --model", len(names), names)
	}
	return names[0], nil
}

// OnlyModel returns the one model the server has ready.
func (c *Client) OnlyModel(ctx context.Context) (string, error) {
	idx, err := c.Index(ctx)
	if err != nil {
		return "", err
	}
	return onlyModel(readyVersions(idx))
}

// Resolve fills in t: the model, the only one served when not named; the
// stable version, the one with the most traffic now; the candidate, the
// newest ready version newer than the stable one (never an older one).
func (c *Client) Resolve(ctx context.Context, t Target) (Target, error) {
	idx, err := c.Index(ctx)
	if err != nil {
		return t, err
	}
	ready := readyVersions(idx)
	if t.Model == "" {
		if t.Model, err = onlyModel(ready); err != nil {
			return t, err
		}
	}
	versions := ready[t.Model]
	if len(versions) == 0 {
		return t, fmt.Errorf("model %q has no ready version on %s", t.Model, c.Base)
	}
	// A rollout not ended holds the traffic policy: the versions read
	// from it would be its own, so say so rather than what they make.
	if st, err := c.Rollout(ctx, t.Model); err == nil && !st.Done() {
		s := st.Spec
		return t, fmt.Errorf("%w: model %q has a %s rollout from version %d to %d, %s at step %d of %d: promote or abort it first", ErrInProgress, t.Model, s.Strategy, s.Stable, s.Candidate, st.Phase, st.Step+1, len(s.Steps))
	}
	if t.Stable == 0 {
		p, err := c.Policy(ctx, t.Model)
		if err != nil {
			return t, err
		}
		for v, w := range p.Weights {
			if w > p.Weights[t.Stable] || w == p.Weights[t.Stable] && v < t.Stable {
				t.Stable = v
			}
		}
	}
	switch {
	case t.Candidate != 0 && !slices.Contains(versions, t.Candidate):
		return t, fmt.Errorf("%w: version %d of model %q is not loaded (ready: %v)", ErrNoCandidate, t.Candidate, t.Model, versions)
	case t.Candidate == 0:
		// Only forward: after a promotion the version it replaced is
		// still loaded, and rolling it out again is an undo, not a
		// default.
		if newest := versions[len(versions)-1]; newest > t.Stable {
			t.Candidate = newest
		} else {
			return t, fmt.Errorf("%w: model %q has no ready version newer than version %d, which serves now (ready: %v); put the new version's folder in the repository, or name a version with --model-version", ErrNoCandidate, t.Model, t.Stable, versions)
		}
	}
	return t, nil
}
