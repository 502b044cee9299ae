package core

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/lograte"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// staleRouteLog bounds the log of requests routed past a version their
// policy names but that is not ready to a line a second: every request
// meets it until the policy changes.
var staleRouteLog lograte.Limiter

// traffic holds the models' traffic policies, prepared for routing. Every
// request reads them and few ever change them: the map is replaced on each
// change, never modified, so reads take no lock.
type traffic struct {
	mu      sync.Mutex // serializes changes
	routers atomic.Pointer[map[string]*deploy.Router]
	store   *deploy.Store // nil: policies live in memory only
}

func (t *traffic) router(model string) (*deploy.Router, bool) {
	m := t.routers.Load()
	if m == nil {
		return nil, false
	}
	r, ok := (*m)[model]
	return r, ok
}

// Policy returns model's traffic policy, if one is set.
func (s *Core) Policy(model string) (deploy.Policy, bool) { return s.traffic.get(model) }

func (t *traffic) get(model string) (deploy.Policy, bool) {
	r, ok := t.router(model)
	if !ok {
		return deploy.Policy{}, false
	}
	return r.Policy, true
}

// set applies model's policy (nil: removes it); the caller holds mu.
func (t *traffic) set(model string, p *deploy.Policy) {
	next := map[string]*deploy.Router{}
	if cur := t.routers.Load(); cur != nil {
		next = maps.Clone(*cur)
	}
	if p == nil {
		delete(next, model)
	} else {
		next[model] = p.Router()
	}
	t.routers.Store(&next)
}

// route resolves the model version a request gets: the one it names, or
// by the model's traffic policy, or the latest ready one. key returns the
// request's sticky key, read only when the policy is sticky.
func (s *Core) route(ctx context.Context, name, version string, key func(deploy.Policy) string) (*runner.Model, error) {
	if version != "" {
		return s.Acquire(ctx, name, version)
	}
	p, ok := s.traffic.router(name)
	if !ok {
		return s.Acquire(ctx, name, "")
	}
	k := ""
	if p.Sticky != "" {
		k = key(p.Policy)
	}
	v := p.Route(k, rand.Float64())
	m, err := s.repo.Acquire(ctx, name, v)
	if err != nil {
		// The policy names a version that is gone: serve the latest ready
		// rather than fail every request.
		if n, ok := staleRouteLog.Allow(); ok {
			s.log.Warn("traffic policy names a version that is not ready", "model", name, "version", v, "err", err, "unlogged_since", n)
		}
		return s.Acquire(ctx, name, "")
	}
	return m, nil
}

// Route resolves the version a front end's request gets: the one it
// names, else by the model's traffic policy (its weights, and a rollout's
// steps), else the latest ready one. A sticky policy keys on the header
// it names (header returns one by name; nil: none) or, sticky by request
// id, on id (a request's id; OpenAI's user). It fails as Acquire does.
func (s *Core) Route(ctx context.Context, name, version, id string, header func(string) string) (*runner.Model, error) {
	return s.route(ctx, name, version, func(p deploy.Policy) string {
		if key, byHeader := headerKey(p, header); byHeader {
			return key
		}
		return id
	})
}

// routeEarly routes a request from its names and headers alone (header
// returns one by name; nil: none), when the traffic policy needs nothing
// of its body (no sticky routing by request id); routed is false when it
// does.
func (s *Core) routeEarly(ctx context.Context, name, version string, header func(string) string) (m *runner.Model, routed bool, err error) {
	routed = true
	m, err = s.route(ctx, name, version, func(p deploy.Policy) string {
		key, byHeader := headerKey(p, header)
		routed = byHeader // else sticky by request id: the body decides
		return key
	})
	if !routed {
		return nil, false, nil
	}
	return m, true, err
}

// headerKey returns a request's sticky key under p when p is sticky by a
// header ("" when the request has none), and byHeader false otherwise.
func headerKey(p deploy.Policy, header func(string) string) (key string, byHeader bool) {
	h := p.StickyHeader()
	if h == "" {
		return "", false
	}
	if header == nil {
		return "", true
	}
	return header(h), true
}

// ready returns VersionReady for model.
func (s *Core) ready(model string) func(int64) bool {
	return func(v int64) bool { return s.VersionReady(model, v) }
}

// SetPolicy validates and applies model's traffic policy, saving it first
// when the server keeps state: it fails, changing nothing, when a version
// it weighs is not ready or the policy cannot be saved. by says who asked,
// for the log. It is the rollout engine's way to move traffic; an admin's
// goes through changePolicy.
func (s *Core) SetPolicy(model string, p deploy.Policy, by string) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	return s.setPolicyLocked(model, p, by)
}

// setPolicyLocked is SetPolicy for a caller holding traffic.mu: the
// versions' readiness is checked under the lock that loads and unloads
// take, so no version goes between the check and the change.
func (s *Core) setPolicyLocked(model string, p deploy.Policy, by string) error {
	if err := p.Validate(s.ready(model)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	if p.Shadow != nil {
		// Mirroring compares tensor outputs; generated text is sampled,
		// streamed and never mirrored, so such a shadow would report
		// nothing while seeming to run.
		if m, err := s.Resolve(model, strconv.FormatInt(p.Shadow.Version, 10)); err == nil && m.Generator() != nil {
			return fmt.Errorf("%w: shadow: %q is a text generator, whose sequences are not mirrored; move its traffic by weights (a canary) instead", ErrBadPolicy, model)
		}
	}
	if s.traffic.store != nil {
		if err := s.traffic.store.Save(model, p); err != nil {
			return fmt.Errorf("traffic policy of %q not saved, so not applied: %w", model, err)
		}
	}
	s.traffic.set(model, &p)
	s.log.Info("traffic policy changed", "model", model, "shares", p.String(), "sticky", p.Sticky, "by", by)
	return nil
}

// ClearPolicy returns model to the default: the latest ready version.
func (s *Core) ClearPolicy(model, by string) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	return s.clearPolicyLocked(model, by)
}

func (s *Core) clearPolicyLocked(model, by string) error {
	if s.traffic.store != nil {
		if err := s.traffic.store.Delete(model); err != nil {
			return fmt.Errorf("traffic policy of %q not removed from the state folder, so kept: %w", model, err)
		}
	}
	s.traffic.set(model, nil)
	s.log.Info("traffic policy cleared", "model", model, "by", by)
	return nil
}

// ChangePolicy sets (p) or clears (nil) model's policy on an admin's
// request, refused while a rollout owns the model's traffic. Clearing
// sends all traffic to the latest ready version: refused too, unless
// forced, when that version's last rollout judged it unfit.
func (s *Core) ChangePolicy(model string, p *deploy.Policy, by string, force bool) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	if err := s.idle(model, "changing its traffic policy"); err != nil {
		return err
	}
	if p != nil {
		p.Rollout = 0 // a person's policy, whatever the body said
		return s.setPolicyLocked(model, *p, by)
	}
	if latest, err := s.Resolve(model, ""); err == nil && !force && s.rollouts != nil {
		if err := s.rollouts.Rejected(model, latest.Metadata().Version); err != nil {
			return fmt.Errorf("%w; traffic left as it was: send DELETE with ?force=true to give it all traffic anyway", err)
		}
	}
	return s.clearPolicyLocked(model, by)
}

// errBusy refuses an admin change of a model whose rollout has not ended:
// until it does, the rollout decides the model's traffic and needs both
// its versions loaded.
var errBusy = errors.New("rollout in progress")

// idle fails with errBusy, naming the rollout, while model has one in
// progress or paused; what says what was refused.
func (s *Core) idle(model, what string) error {
	if s.rollouts == nil {
		return nil
	}
	if st, ok := s.rollouts.Active(model); ok {
		return fmt.Errorf("%w: the %s of %q from version %d to %d is %s; %s is refused until it is promoted or aborted",
			errBusy, st.Spec.Strategy, model, st.Spec.Stable, st.Spec.Candidate, st.Phase, what)
	}
	return nil
}

// AdminStatus is the HTTP status of a failed admin change: 404 no such
// model or rollout, 400 a bad request, 409 a change that does not fit the
// state the server is in, 500 the server's own failure (a state folder it
// cannot write). Whatever the status, nothing was changed.
func AdminStatus(err error) int {
	switch {
	case errors.Is(err, deploy.ErrNoRollout), errors.Is(err, runner.ErrModelNotFound):
		return http.StatusNotFound
	case errors.Is(err, errBusy), errors.Is(err, deploy.ErrInProgress), errors.Is(err, deploy.ErrRefused), errors.Is(err, ErrBadPolicy):
		return http.StatusConflict
	case errors.Is(err, deploy.ErrInvalidSpec), errors.Is(err, protocol.ErrBadRequest), errors.Is(err, runner.ErrInvalidInput):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// restorePolicies applies the policies saved in the state folder; one that
// no longer fits the loaded versions is skipped, with a warning.
func (s *Core) restorePolicies() error {
	saved, err := s.traffic.store.Load()
	if err != nil {
		return err
	}
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	for model, p := range saved {
		if err := p.Validate(s.ready(model)); err != nil {
			s.log.Warn("saved traffic policy skipped", "model", model, "err", err)
			continue
		}
		s.traffic.set(model, &p)
		s.log.Info("traffic policy restored", "model", model, "shares", p.String())
	}
	return nil
}

// ErrBadPolicy refuses a traffic policy that does not fit the versions
// loaded.
var ErrBadPolicy = errors.New("invalid traffic policy")

// ErrAdminElsewhere refuses the admin API on a public port of a server
// with no admin token.
var ErrAdminElsewhere = errors.New("the admin API is not served on this port: call the admin listener (infer serve --admin-port, on 127.0.0.1 by default), or start the server with an admin token and send it as a bearer token")

// Authorize decides an admin call over either protocol from its
// Authorization value and remote address, on a public port or the admin
// listener: nil, or the refusal's status, logged with the caller and never
// the token. The rule:
//
//   - with an admin token, every call must carry it (401 otherwise),
//     wherever it arrives;
//   - without one, the admin listener answers whoever reaches it (it
//     listens on loopback unless told otherwise), and the public ports
//     refuse (403), except loopback callers when AdminTrustLoopback is set.
func (s *Core) Authorize(authorization, remote, what string, public bool) (int, error) {
	if len(what) > 256 { // logged on refusal: a client's path, of any length
		what = what[:256] + "..."
	}
	if s.opts.AdminToken != "" {
		got, ok := strings.CutPrefix(authorization, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) != 1 {
			s.log.Warn("admin request refused", "path", what, "from", remote, "reason", "no or wrong bearer token")
			return http.StatusUnauthorized, errors.New("admin endpoint: a bearer token is required")
		}
		return 0, nil
	}
	if !public {
		return 0, nil
	}
	if !s.opts.AdminTrustLoopback {
		s.log.Warn("admin request refused", "path", what, "from", remote, "reason", "public port and no admin token set")
		return http.StatusForbidden, ErrAdminElsewhere
	}
	if host, _, err := net.SplitHostPort(remote); err != nil || !net.ParseIP(host).IsLoopback() {
		s.log.Warn("admin request refused", "path", what, "from", remote, "reason", "not loopback and no admin token set")
		return http.StatusForbidden, errors.New("admin endpoint: only loopback callers, as the server has no admin token")
	}
	return 0, nil
}

// trafficCollector exports each model's traffic shares.
type trafficCollector struct{ t *traffic }

var descShare = prometheus.NewDesc("infer_traffic_share", "Share of a model's unversioned requests routed to each version by its traffic policy.", labels, nil)

func (c trafficCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descShare }

func (c trafficCollector) Collect(ch chan<- prometheus.Metric) {
	routers := c.t.routers.Load()
	if routers == nil {
		return
	}
	for model, p := range *routers {
		shares := p.Shares()
		for v := range p.Weights {
			ch <- prometheus.MustNewConstMetric(descShare, prometheus.GaugeValue, shares[v], model, strconv.FormatInt(v, 10))
		}
	}
}

// CurrentPolicy returns model's traffic policy in force; ok is false
// when it has none.
func (s *Core) CurrentPolicy(model string) (deploy.Policy, bool) { return s.traffic.get(model) }
