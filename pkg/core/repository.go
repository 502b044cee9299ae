package core

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// CheckLoadParameters refuses the parameters of a load request (Triton's
// model control API), which this server does not take: "config", a
// configuration override, and "file:<path>", model files sent in the
// request, would leave a version loaded from something other than its
// folder; any other name is not a load parameter at all. A client is
// told so (protocol.ErrBadRequest, naming the parameter) rather than
// answered 200 with its override ignored.
func CheckLoadParameters(names []string) error {
	if len(names) == 0 {
		return nil
	}
	switch name := slices.Min(names); {
	case name == "config":
		return fmt.Errorf("%w: parameters.config: a configuration override is not taken here: the version loads with the config.yaml in its folder", protocol.ErrBadRequest)
	case strings.HasPrefix(name, "file:"):
		return fmt.Errorf("%w: parameters.%s: model files are not taken in the request: put them in the model's folder in the repository", protocol.ErrBadRequest, name)
	default:
		return fmt.Errorf("%w: parameters.%s: no such load parameter (Triton's are config and file:<path>, neither taken here)", protocol.ErrBadRequest, name)
	}
}

// Load (re)loads model name from the repository on an admin's request. A
// load that brings a newer version does not hand it the model's traffic:
// with no policy set, unversioned requests stay on the version that
// answered them before, until a policy or a rollout moves them. The
// serving version is pinned before the load, so that if it cannot be the
// load is refused with nothing changed. A load is refused while a rollout
// of the model is in progress: it could drop a version the rollout needs.
func (s *Core) Load(name, by string) error {
	if err := runner.ValidModelName(name); err != nil {
		return err // no folder holds it: said before the name is logged or quoted whole
	}
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	if err := s.idle(name, "a load of the model"); err != nil {
		return err
	}
	before, _ := s.Resolve(name, "")
	_, hasPolicy := s.traffic.get(name)
	pinned := before != nil && !hasPolicy
	var serving int64
	if pinned {
		serving = before.Metadata().Version
		if err := s.setPolicyLocked(name, deploy.Weighted(serving), "load of model, keeping the serving version"); err != nil {
			return fmt.Errorf("load of %q refused, nothing changed: traffic could not be kept on version %d: %w", name, serving, err)
		}
	}
	loadErr := s.repo.Load(name)
	if pinned {
		// The pin stays only when it keeps traffic off a newer version.
		if after, err := s.Resolve(name, ""); err != nil || after.Metadata().Version == serving || !s.VersionReady(name, serving) {
			if err := s.clearPolicyLocked(name, "load of model, no newer version"); err != nil {
				s.log.Error("traffic pin of a load not removed", "model", name, "version", serving, "err", err)
			}
		}
	}
	if loadErr != nil {
		s.log.Warn("model load failed", "model", name, "by", by, "err", loadErr)
		return loadFailure{fmt.Errorf("load of model %q: %w (ready now: %s)", name, loadErr, s.readyList(name))}
	}
	s.log.Info("model loaded on request", "model", name, "by", by, "ready", s.readyList(name))
	return nil
}

// readyList names model name's ready versions, for messages.
func (s *Core) readyList(name string) string {
	vs := s.ReadyVersions(name)
	if len(vs) == 0 {
		return "no version"
	}
	slices.SortFunc(vs, func(a, b string) int {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return int(x - y)
	})
	return fmt.Sprintf("versions %v", vs)
}

// loadFailure is a load that failed on the model's files.
type loadFailure struct{ error }

func (f loadFailure) Unwrap() error { return f.error }

// LoadStatus is the HTTP status of a failed load: as AdminStatus, except
// that the model's files at fault are a bad request (as Triton reports
// it), not the server's failure.
func LoadStatus(err error) int {
	status := AdminStatus(err)
	if status == http.StatusInternalServerError && errors.As(err, new(loadFailure)) {
		status = http.StatusBadRequest
	}
	return status
}

// Unload closes every version of model name on an admin's request,
// refused while a rollout of the model is in progress.
func (s *Core) Unload(name, by string) error {
	if err := runner.ValidModelName(name); err != nil {
		return err
	}
	s.traffic.mu.Lock()
	defer s.traffic.mu.Unlock()
	if err := s.idle(name, "an unload of the model"); err != nil {
		return err
	}
	if err := s.repo.Unload(name); err != nil {
		return fmt.Errorf("unload of model %q: %w", name, err)
	}
	s.log.Info("model unloaded on request", "model", name, "by", by)
	return nil
}
