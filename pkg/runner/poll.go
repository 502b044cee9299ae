package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"time"
)

// drainLimit bounds how long a version taken out of service waits for
// the requests that hold it before it closes (a stream can hold one for
// long); what it has queued is answered either way.
const drainLimit = 30 * time.Second

// poll rereads the repository every PollInterval until it closes.
func (r *Repository) poll() { r.ctl.every(r.ctl.PollInterval, r.pollOnce) }

// pollOnce brings the loaded versions in line with the repository's
// files: a new version, or one whose model file or config.yaml changed,
// loads beside what serves and takes its place once ready (a failed load
// keeps the old one serving); a version or model gone from the repository
// leaves the index, drains and unloads.
func (r *Repository) pollOnce() {
	names, err := r.List()
	if err != nil {
		r.warnOnce("poll", "repository poll failed", "err", err)
		return
	}
	r.warned.Delete("poll")
	seen := map[string]bool{}
	for _, name := range names {
		seen[name] = true
		r.pollModel(name)
	}
	r.mu.RLock()
	var gone []string
	for name := range r.models {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	r.mu.RUnlock()
	for _, name := range gone {
		r.pollModelGone(name)
	}
}

// configStamp is model name's config.yaml as poll mode sees it.
func (r *Repository) configStamp(name string) fileStamp {
	if r.single != "" {
		return fileStamp{}
	}
	return r.stampOf(path.Join(name, ConfigFile))
}

func (r *Repository) pollModel(name string) {
	cfg, files := Config{}, map[int64]string{1: r.singleFile}
	if r.single == "" {
		var err error
		if cfg, files, err = r.layout(name); err != nil {
			if errors.Is(err, ErrModelNotFound) || errors.Is(err, fs.ErrNotExist) {
				r.pollModelGone(name)
				return
			}
			r.warnOnce("model "+name, "repository poll: model not reread, what is loaded keeps serving", "model", name, "err", err)
			return
		}
		r.warned.Delete("model " + name)
	}
	cfgStamp := r.configStamp(name)
	r.mu.RLock()
	current := maps.Clone(r.models[name])
	prev, known := r.ctl.configs[name]
	r.mu.RUnlock()
	cfgChanged := known && prev != cfgStamp

	for num, file := range files {
		stamp := r.stampOf(r.modelPath(name, file))
		old := current[num]
		key := keyString(name, num)
		r.mu.RLock()
		failed, tried := r.ctl.failed[key]
		r.mu.RUnlock()
		switch {
		case old != nil && old.stamp == stamp && !cfgChanged:
			continue // unchanged
		case tried && failed == stamp && !cfgChanged:
			continue // failed before as it is now
		}
		nv := r.loadVersion(name, num, file, cfg)
		r.mu.Lock()
		if nv.model == nil {
			r.ctl.failed[key] = stamp
		} else {
			delete(r.ctl.failed, key)
		}
		keepOld := nv.model == nil && old != nil && old.model != nil
		if !keepOld {
			if r.models[name] == nil {
				r.models[name] = map[int64]*version{}
			}
			r.models[name][num] = nv
		}
		r.mu.Unlock()
		switch {
		case keepOld:
			r.log().Warn("repository poll: changed version did not load, the old one keeps serving", "model", name, "version", num, "err", nv.err)
		case nv.model == nil:
			r.log().Warn("repository poll: new version did not load", "model", name, "version", num, "err", nv.err)
		default:
			r.log().Info("repository poll: version loaded", "model", name, "version", num, "bytes", nv.bytes.Load())
			r.ctl.emit(ControlEvent{Model: name, Version: num, Kind: EventLoad, Reason: ReasonPoll, Bytes: nv.bytes.Load()})
			if old != nil && old.model != nil {
				r.retire(name, old, ReasonReplaced)
			}
		}
	}
	for num, old := range current {
		if _, ok := files[num]; ok {
			continue
		}
		r.mu.Lock()
		if r.models[name][num] == old {
			delete(r.models[name], num)
		}
		r.mu.Unlock()
		if old.model != nil {
			r.retire(name, old, ReasonRemoved)
		}
	}
	r.mu.Lock()
	r.ctl.configs[name] = cfgStamp
	r.mu.Unlock()
}

// pollModelGone takes every version of a model that left the repository
// out of service.
func (r *Repository) pollModelGone(name string) {
	r.mu.Lock()
	versions := r.models[name]
	delete(r.models, name)
	delete(r.ctl.configs, name)
	r.mu.Unlock()
	for _, v := range versions {
		if v.model != nil {
			r.retire(name, v, ReasonRemoved)
		}
	}
}

// retire closes a version already out of the index once the requests
// that hold it end (up to drainLimit).
func (r *Repository) retire(name string, v *version, reason string) {
	r.ctl.waiting.Add(1)
	timer := time.NewTimer(drainLimit)
	for v.leases.Load() > 0 {
		changed := r.ctl.changes()
		if v.leases.Load() == 0 {
			break
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-r.ctl.ctx.Done():
		}
		break
	}
	timer.Stop()
	r.ctl.waiting.Add(-1)
	r.closeDetached([]detached{{name, v.num, v.bytes.Load(), v.model}}, reason)
}

// recordConfigs notes each model's config.yaml at start, so that poll
// mode reloads a model whose configuration changes afterwards.
func (r *Repository) recordConfigs(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range names {
		r.ctl.configs[name] = r.configStamp(name)
	}
}

// warnOnce logs a warning unless key's last one said the same: a poll
// every second would otherwise repeat a fault's warning for as long as it
// stays. Deleting key from r.warned lets the next one be logged.
func (r *Repository) warnOnce(key, msg string, args ...any) {
	text := fmt.Sprint(append([]any{msg}, args...)...)
	if prev, loaded := r.warned.Swap(key, text); loaded && prev == text {
		return
	}
	r.log().Warn(msg, args...)
}
