package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

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
func (s *Server) route(ctx context.Context, name, version string, key func(deploy.Policy) string) (*runner.Model, error) {
	if version != "" {
		return s.acquire(ctx, name, version)
	}
	p, ok := s.traffic.router(name)
	if !ok {
		return s.acquire(ctx, name, "")
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
		s.log.Warn("traffic policy names a version that is not ready", "model", name, "version", v, "err", err)
		return s.acquire(ctx, name, "")
	}
	return m, nil
}

// routeEarly routes a request from its path and headers alone, when the
// traffic policy needs nothing of its body (no sticky routing by request
// id); routed is false when it does.
func (s *Server) routeEarly(ctx context.Context, name, version string, h http.Header) (m *runner.Model, routed bool, err error) {
	routed = true
	m, err = s.route(ctx, name, version, func(p deploy.Policy) string {
		if header := p.StickyHeader(); header != "" {
			return h.Get(header)
		}
		routed = false // sticky by request id: the body decides
		return ""
	})
	if !routed {
		return nil, false, nil
	}
	return m, true, err
}

// ready returns VersionReady for model.
func (s *Server) ready(model string) func(int64) bool {
	return func(v int64) bool { return s.VersionReady(model, v) }
}

// SetPolicy validates and applies model's traffic policy, saving it first
// when the server keeps state: it fails, changing nothing, when a version
// it weighs is not ready or the policy cannot be saved. by says who asked,
// for the log. It is the rollout engine's way to move traffic; an admin's
// goes through changePolicy.
func (s *Server) SetPolicy(model string, p deploy.Policy, by string) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	return s.setPolicyLocked(model, p, by)
}

// setPolicyLocked is SetPolicy for a caller holding traffic.mu: the
// versions' readiness is checked under the lock that loads and unloads
// take, so no version goes between the check and the change.
func (s *Server) setPolicyLocked(model string, p deploy.Policy, by string) error {
	if err := p.Validate(s.ready(model)); err != nil {
		return fmt.Errorf("%w: %v", errBadPolicy, err)
	}
	if s.traffic.store != nil {
		if err := s.traffic.store.Save(model, p); err != nil {
			return fmt.Errorf("traffic policy of %q not saved, so not applied: %w", model, err)
		}
	}
	s.traffic.set(model, &p)
	s.log.Info("traffic policy changed", "model", model, "weights", fmt.Sprint(p.Weights), "sticky", p.Sticky, "by", by)
	return nil
}

// ClearPolicy returns model to the default: the latest ready version.
func (s *Server) ClearPolicy(model, by string) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	return s.clearPolicyLocked(model, by)
}

func (s *Server) clearPolicyLocked(model, by string) error {
	if s.traffic.store != nil {
		if err := s.traffic.store.Delete(model); err != nil {
			return fmt.Errorf("traffic policy of %q not removed from the state folder, so kept: %w", model, err)
		}
	}
	s.traffic.set(model, nil)
	s.log.Info("traffic policy cleared", "model", model, "by", by)
	return nil
}

// changePolicy sets (p) or clears (nil) model's policy on an admin's
// request, refused while a rollout owns the model's traffic.
func (s *Server) changePolicy(model string, p *deploy.Policy, by string) error {
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	if err := s.idle(model, "changing its traffic policy"); err != nil {
		return err
	}
	if p == nil {
		return s.clearPolicyLocked(model, by)
	}
	return s.setPolicyLocked(model, *p, by)
}

// errBusy refuses an admin change of a model whose rollout has not ended:
// until it does, the rollout decides the model's traffic and needs both
// its versions loaded.
var errBusy = errors.New("rollout in progress")

// idle fails with errBusy, naming the rollout, while model has one in
// progress or paused; what says what was refused.
func (s *Server) idle(model, what string) error {
	if s.rollouts == nil {
		return nil
	}
	if st, ok := s.rollouts.Active(model); ok {
		return fmt.Errorf("%w: the %s of %q from version %d to %d is %s; %s is refused until it is promoted or aborted",
			errBusy, st.Spec.Strategy, model, st.Spec.Stable, st.Spec.Candidate, st.Phase, what)
	}
	return nil
}

// adminStatus is the HTTP status of a failed admin change: 404 no such
// model or rollout, 400 a bad request, 409 a change that does not fit the
// state the server is in, 500 the server's own failure (a state folder it
// cannot write). Whatever the status, nothing was changed.
func adminStatus(err error) int {
	switch {
	case errors.Is(err, deploy.ErrNoRollout), errors.Is(err, runner.ErrModelNotFound):
		return http.StatusNotFound
	case errors.Is(err, errBusy), errors.Is(err, deploy.ErrInProgress), errors.Is(err, deploy.ErrRefused), errors.Is(err, errBadPolicy):
		return http.StatusConflict
	case errors.Is(err, deploy.ErrInvalidSpec), errors.Is(err, protocol.ErrBadRequest):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// restorePolicies applies the policies saved in the state folder; one that
// no longer fits the loaded versions is skipped, with a warning.
func (s *Server) restorePolicies() error {
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
		s.log.Info("traffic policy restored", "model", model, "weights", fmt.Sprint(p.Weights))
	}
	return nil
}

var errBadPolicy = errors.New("invalid traffic policy")

// admin guards the endpoints that change what the server serves, on the
// public port or the admin listener, as authorize decides. The token is
// never logged.
func (s *Server) admin(next http.HandlerFunc, public bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if status, err := s.authorize(r.Header.Get("Authorization"), r.RemoteAddr, r.URL.Path, public); err != nil {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="infer admin"`)
			}
			writeError(w, status, err)
			return
		}
		next(w, r)
	}
}

// errAdminElsewhere refuses the admin API on a public port of a server
// with no admin token.
var errAdminElsewhere = errors.New("the admin API is not served on this port: call the admin listener (infer serve --admin-port, on 127.0.0.1 by default), or start the server with an admin token and send it as a bearer token")

// authorize decides an admin call over either protocol from its
// Authorization value and remote address, on a public port or the admin
// listener: nil, or the refusal's status, logged with the caller and never
// the token. The rule:
//
//   - with an admin token, every call must carry it (401 otherwise),
//     wherever it arrives;
//   - without one, the admin listener answers whoever reaches it (it
//     listens on loopback unless told otherwise), and the public ports
//     refuse (403), except loopback callers when AdminTrustLoopback is set.
func (s *Server) authorize(authorization, remote, what string, public bool) (int, error) {
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
		return http.StatusForbidden, errAdminElsewhere
	}
	if host, _, err := net.SplitHostPort(remote); err != nil || !net.ParseIP(host).IsLoopback() {
		s.log.Warn("admin request refused", "path", what, "from", remote, "reason", "not loopback and no admin token set")
		return http.StatusForbidden, errors.New("admin endpoint: only loopback callers, as the server has no admin token")
	}
	return 0, nil
}

// who names an admin caller for the log.
func who(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return "token holder at " + r.RemoteAddr
	}
	return r.RemoteAddr
}

func (s *Server) serveGetPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if _, err := s.resolve(name, ""); err != nil {
		s.fail(w, err)
		return
	}
	p, ok := s.traffic.get(name)
	if !ok { // the default: all to the latest ready version
		m, _ := s.resolve(name, "")
		p = deploy.Weighted(m.Metadata().Version)
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) servePutPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	if _, err := s.resolve(name, ""); err != nil {
		s.fail(w, err)
		return
	}
	var p deploy.Policy
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("traffic policy JSON: %v", err))
		return
	}
	if err := s.changePolicy(name, &p, who(r)); err != nil {
		status := adminStatus(err)
		if errors.Is(err, errBadPolicy) {
			status = http.StatusBadRequest // the body named a version not ready
		}
		writeError(w, status, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) serveShadowSummary(w http.ResponseWriter, r *http.Request) {
	sum, ok := s.ShadowSummary(r.PathValue("model"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("model %q has mirrored nothing", r.PathValue("model")))
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) serveDeletePolicy(w http.ResponseWriter, r *http.Request) {
	if err := s.changePolicy(r.PathValue("model"), nil, who(r)); err != nil {
		writeError(w, adminStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
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
		total := 0.0
		for _, w := range p.Weights {
			total += w
		}
		for v, w := range p.Weights {
			ch <- prometheus.MustNewConstMetric(descShare, prometheus.GaugeValue, w/total, model, strconv.FormatInt(v, 10))
		}
	}
}
