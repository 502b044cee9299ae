package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// BatchSizeHeader carries the number of rows in the batch a request ran in.
const BatchSizeHeader = "Inference-Batch-Size"

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, protocol.Error{Error: err.Error()})
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	status := httpStatus(err)
	if after, ok := retryAfter(err); ok {
		w.Header().Set("Retry-After", after)
		if errors.Is(err, errCircuitOpen) {
			w.Header().Set(FallbackHeader, viaUnavailable)
		}
	}
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
	}
	writeError(w, status, err)
}

// model resolves the {model} and optional {version} path values, loading
// the version first when the repository loads on demand.
func (s *Server) model(r *http.Request) (*runner.Model, error) {
	return s.acquire(r.Context(), r.PathValue("model"), r.PathValue("version"))
}

// parseVersion reads a request's version ("": 0, the latest).
func parseVersion(version string) (int64, error) {
	if version == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: version %q is not a positive integer", runner.ErrModelNotFound, version)
	}
	return n, nil
}

// resolve returns the ready model version a request names; an empty
// version means the latest ready one. It never loads one.
func (s *Server) resolve(name, version string) (*runner.Model, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	return s.repo.Model(name, v)
}

// acquire is resolve for a request that is about to use the version: in
// on-demand mode it waits (bounded by ctx) for a version that is not
// loaded, and holds it loaded until ctx ends.
func (s *Server) acquire(ctx context.Context, name, version string) (*runner.Model, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	return s.repo.Acquire(ctx, name, v)
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !s.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serveServerMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, protocol.ServerMetadata{Name: s.opts.Name, Version: s.opts.Version, Extensions: s.extensions()})
}

func tensorMetadata(specs []runner.TensorSpec) []protocol.TensorMetadata {
	out := make([]protocol.TensorMetadata, len(specs))
	for i, t := range specs {
		out[i] = protocol.TensorMetadata{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
	}
	return out
}

func (s *Server) serveModelMetadata(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	meta := m.Metadata()
	writeJSON(w, http.StatusOK, protocol.ModelMetadata{Name: meta.Name, Versions: s.readyVersions(meta.Name), Platform: meta.Platform,
		Inputs: tensorMetadata(meta.Inputs), Outputs: tensorMetadata(meta.Outputs)})
}

func (s *Server) serveModelReady(w http.ResponseWriter, r *http.Request) {
	if _, err := s.resolve(r.PathValue("model"), r.PathValue("version")); err != nil || s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

type jsonDuration struct {
	Count int64 `json:"count"`
	Ns    int64 `json:"ns"`
}

type modelStats struct {
	Name           string                  `json:"name"`
	Version        string                  `json:"version"`
	LastInference  int64                   `json:"last_inference"` // ms since the epoch
	InferenceCount int64                   `json:"inference_count"`
	ExecutionCount int64                   `json:"execution_count"`
	InferenceStats map[string]jsonDuration `json:"inference_stats"`
}

// versionStats is one ready model version's statistics.
type versionStats struct {
	name, version string
	runner.Stats
}

// stats returns the statistics of the ready versions that name and version
// select (empty: all). It fails when a name is given but resolves to no
// ready version.
func (s *Server) stats(name, version string) ([]versionStats, error) {
	var out []versionStats
	for _, st := range s.repo.Index() {
		v := strconv.FormatInt(st.Version, 10)
		if name != "" && st.Name != name || version != "" && version != v || st.State != runner.StateReady {
			continue
		}
		if m, err := s.repo.Model(st.Name, st.Version); err == nil {
			out = append(out, versionStats{st.Name, v, m.Stats()})
		}
	}
	if name != "" && len(out) == 0 {
		if _, err := s.resolve(name, version); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// serveModelStats answers Triton's statistics extension, the cumulative
// counts and nanoseconds perf_analyzer differences between two reads.
func (s *Server) serveModelStats(w http.ResponseWriter, r *http.Request) {
	all, err := s.stats(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		s.fail(w, err)
		return
	}
	out := []modelStats{}
	for _, vs := range all {
		x := vs.Stats
		ms := modelStats{Name: vs.name, Version: vs.version, InferenceCount: x.Rows, ExecutionCount: x.Executions,
			InferenceStats: map[string]jsonDuration{
				"success":        {x.Success, int64(x.SuccessTime)},
				"fail":           {x.Failure, 0},
				"queue":          {x.Success, int64(x.Queue)},
				"compute_input":  {x.Success, int64(x.ComputeInput)},
				"compute_infer":  {x.Success, int64(x.ComputeInfer)},
				"compute_output": {x.Success, int64(x.ComputeOutput)},
				"cache_hit":      {},
				"cache_miss":     {},
			}}
		if c := x.Cache; c != nil {
			ms.InferenceStats["cache_hit"] = jsonDuration{c.Hits, int64(c.HitTime)}
			ms.InferenceStats["cache_miss"] = jsonDuration{c.Misses, int64(c.MissTime)}
		}
		if !x.LastInference.IsZero() {
			ms.LastInference = x.LastInference.UnixMilli()
		}
		out = append(out, ms)
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_stats": out})
}

func (s *Server) serveRepositoryIndex(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		State   string `json:"state"`
		Reason  string `json:"reason,omitempty"`
	}
	idx := []entry{}
	for _, st := range s.repo.Index() {
		idx = append(idx, entry{st.Name, strconv.FormatInt(st.Version, 10), st.State, st.Reason})
	}
	writeJSON(w, http.StatusOK, idx)
}

func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request) {
	if err := s.load(r.PathValue("model"), who(r)); err != nil {
		writeError(w, loadStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serveUnload(w http.ResponseWriter, r *http.Request) {
	if err := s.unload(r.PathValue("model"), who(r)); err != nil {
		writeError(w, adminStatus(err), err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// bodyChunk is the most readBody allocates before a body's bytes arrive,
// in bytes: a Content-Length is a claim, and the buffer grows only as the
// bytes it announces come in.
const bodyChunk = 64 << 10

// errBodyTooLarge makes the 413 error of a body over limit bytes, which
// announced (or was found to hold) at least n bytes.
func errBodyTooLarge(n, limit int64) error {
	return fmt.Errorf("request body of %d bytes or more is over the limit of %d bytes (max_body_bytes): %w", n, limit, &http.MaxBytesError{Limit: limit})
}

// readBody reads a request body of at most limit bytes. One that announces
// more is refused before it is read; otherwise the buffer starts at no
// more than bodyChunk and doubles as the bytes arrive, up to the length
// announced, so a client that announces a large body and sends little
// costs the server little.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	want := r.ContentLength // -1: unknown (chunked)
	if want > limit {
		return nil, errBodyTooLarge(want, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	size := int64(bodyChunk)
	if want >= 0 {
		size = min(size, want)
	}
	buf := make([]byte, 0, max(size, 512))
	for {
		if want >= 0 && int64(len(buf)) == want {
			return buf, nil // net/http never reads past the Content-Length
		}
		if len(buf) == cap(buf) {
			grow := int64(cap(buf))
			if want >= 0 {
				grow = min(grow, want-int64(len(buf)))
			}
			buf = slices.Grow(buf, int(grow))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, nil
		case err != nil:
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, errBodyTooLarge(int64(len(buf))+1, limit)
			}
			if errors.Is(err, errBodyTimeout) {
				return nil, fmt.Errorf("reading the body after %d bytes: %w", len(buf), err)
			}
			return nil, fmt.Errorf("%w: reading the body after %d bytes: %v", protocol.ErrBadRequest, len(buf), err)
		}
	}
}

// decodeHTTP reads and decodes an infer request's body.
func decodeHTTP(w http.ResponseWriter, r *http.Request, limit int64) (*protocol.InferRequest, error) {
	body, err := readBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	headerLength, err := protocol.ParseHeaderLength(r.Header.Get(protocol.HeaderContentLength))
	if err != nil {
		return nil, err
	}
	return protocol.DecodeRequest(body, headerLength)
}

// serveInfer is the hot path: decode, run, encode, and account for each
// phase of the request's time.
func (s *Server) serveInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("model")
	var req *protocol.InferRequest
	// Admission before work: route from the path and headers, and shed a
	// request its version's queue cannot take before reading its body.
	m, routed, err := s.routeEarly(r.Context(), name, r.PathValue("version"), r.Header)
	if err == nil && routed {
		if err = m.Admit(); err != nil {
			w.Header().Set("Retry-After", "1") // the body stays unread
		}
	}
	if err == nil {
		req, err = decodeHTTP(w, r, s.opts.MaxBodyBytes)
	}
	if err == nil && !routed {
		m, err = s.route(r.Context(), name, r.PathValue("version"), func(deploy.Policy) string { return req.ID })
	}
	if err != nil {
		s.metrics.record(m, name, protoHTTP, nil, err)
		s.fail(w, err)
		return
	}
	obs := s.metrics.forModel(m)
	obs.inflight.Inc()
	defer obs.inflight.Dec()

	resp, timing, via, err := s.infer(r.Context(), m, req, start)
	var body []byte
	headerLength := int64(-1)
	if err == nil {
		body, headerLength, err = resp.Encode()
	}
	if err != nil {
		s.metrics.record(m, "", protoHTTP, nil, err)
		s.fail(w, err)
		return
	}
	end := time.Now()
	timing.Set(profile.Postprocess, end.Sub(timing.postStart))
	timing.Set(profile.Total, end.Sub(start))

	h := w.Header()
	h.Set("Server-Timing", string(timing.AppendServerTiming(make([]byte, 0, 128))))
	h.Set(BatchSizeHeader, strconv.Itoa(timing.BatchSize))
	if via != "" {
		h.Set(FallbackHeader, via)
	}
	if headerLength >= 0 {
		h.Set("Content-Type", "application/octet-stream")
		h.Set(protocol.HeaderContentLength, strconv.FormatInt(headerLength, 10))
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)

	s.metrics.record(m, "", protoHTTP, &timing.Timing, nil)
	if shadow := s.shadowFor(name, r.PathValue("version"), m); shadow != nil {
		job := shadowJob{name: name, primary: m, shadow: shadow, req: runner.Request{ID: req.ID, Inputs: req.Inputs}, answer: resp.Outputs}
		for _, o := range req.Outputs {
			job.req.Outputs = append(job.req.Outputs, o.Name)
		}
		s.shadow.mirror(job)
	}
}

// run executes req on m under the request's timeout, or the server's
// default when it gives none (0), through m's circuit breaker when it has
// one; via names the fallback that answered instead of m, if one did.
func (s *Server) run(ctx context.Context, m *runner.Model, req *runner.Request, timeout time.Duration) (_ *runner.Response, via string, _ error) {
	if timeout <= 0 {
		timeout = s.opts.DefaultTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if gd := s.guards.get(m); gd != nil {
		resp, via, err := s.answer(ctx, gd, req)
		if via != "" {
			s.metrics.fallback(m, via)
		}
		return resp, via, err
	}
	resp, err := s.execute(ctx, m, req)
	return resp, "", err
}

// serverTiming is a request's timing plus when postprocessing began.
type serverTiming struct {
	profile.Timing
	postStart time.Time
}

// infer decodes the request, runs it on m and returns the response to
// encode; its timing holds every phase but postprocess and total.
func (s *Server) infer(ctx context.Context, m *runner.Model, req *protocol.InferRequest, start time.Time) (*protocol.InferResponse, *serverTiming, string, error) {
	run := runner.Request{ID: req.ID, Inputs: req.Inputs}
	for _, o := range req.Outputs {
		run.Outputs = append(run.Outputs, o.Name)
	}
	timeoutUs, _, err := req.Parameters.Int(protocol.ParamTimeout)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: %v", protocol.ErrBadRequest, err)
	}
	priority, _, err := req.Parameters.Int(protocol.ParamPriority)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: %v", protocol.ErrBadRequest, err)
	}
	run.Priority = int(priority)

	submitted := time.Now()
	out, via, err := s.run(ctx, m, &run, time.Duration(timeoutUs)*time.Microsecond)
	if err != nil {
		return nil, nil, via, err
	}
	t := &serverTiming{Timing: out.Timing, postStart: time.Now()}
	// Preprocess is everything before the request reached the runner, plus
	// the runner's own (tokenization).
	t.Add(profile.Preprocess, submitted.Sub(start))

	meta := m.Metadata()
	resp := &protocol.InferResponse{ModelName: meta.Name, ModelVersion: strconv.FormatInt(meta.Version, 10), ID: req.ID, Outputs: out.Outputs}
	if req.BinaryOutput || len(req.Outputs) > 0 {
		resp.Binary = make([]bool, len(out.Outputs))
		for i := range resp.Binary {
			resp.Binary[i] = req.BinaryOutput || i < len(req.Outputs) && req.Outputs[i].Binary
		}
	}
	return resp, t, via, nil
}
