// Package httpapi is infer's HTTP front end: the Open Inference Protocol
// (KServe v2) with Triton's extensions (binary tensors, statistics, model
// configuration, repository). It decodes each request into a core.Call,
// hands it to the serving core and encodes the answer, with the latency
// budget in a Server-Timing header; it knows nothing of routing,
// batching or the runtime.
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/lograte"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Options configure an API.
type Options struct {
	// Name and Version are reported by GET /v2.
	Name, Version string
	// MaxBodyBytes bounds a request body, in bytes; larger ones get 413.
	MaxBodyBytes int64
}

// API serves the KServe v2 HTTP endpoints of a serving core.
type API struct {
	*core.Core
	opts   Options
	log    *slog.Logger
	bodies *bodyBudget // nil: MaxBodyBytes is 0, no bound
}

// New returns the HTTP API of c.
func New(c *core.Core, opts Options) *API {
	s := &API{Core: c, opts: opts, log: c.Logger()}
	if opts.MaxBodyBytes > 0 {
		s.bodies = &bodyBudget{max: bodiesInFlight * opts.MaxBodyBytes}
	}
	return s
}

// Register adds the API's endpoints to mux: health, server and model
// metadata, readiness, configuration, statistics, quality, inference,
// Triton's generate extension and the repository index. The admin API is
// another front end's.
func (s *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v2/health/live", Live)
	mux.HandleFunc("GET /v2/health/ready", s.serveReady)
	mux.HandleFunc("GET /v2", s.serveServerMetadata)
	for _, prefix := range []string{"/v2/models/{model}", "/v2/models/{model}/versions/{version}"} {
		mux.HandleFunc("GET "+prefix, s.serveModelMetadata)
		mux.HandleFunc("GET "+prefix+"/ready", s.serveModelReady)
		mux.HandleFunc("GET "+prefix+"/config", s.serveModelConfig)
		mux.HandleFunc("GET "+prefix+"/infer-config", s.serveInferConfig)
		mux.HandleFunc("GET "+prefix+"/stats", s.serveModelStats)
		mux.HandleFunc("GET "+prefix+"/quality", s.serveQuality)
		mux.HandleFunc("POST "+prefix+"/infer", s.serveInfer)
		mux.HandleFunc("POST "+prefix+"/generate", s.serveGenerate)
		mux.HandleFunc("POST "+prefix+"/generate_stream", s.serveGenerate)
	}
	mux.HandleFunc("GET /v2/models/stats", s.serveModelStats)
	mux.HandleFunc("POST /v2/repository/index", s.ServeRepositoryIndex)
}

// Live answers GET /v2/health/live: the process is up.
func Live(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	WriteJSONBody(w, status, body)
}

// WriteJSONBody answers body, JSON already encoded, with status.
func WriteJSONBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError answers err as the protocol's error object with status.
func WriteError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(err))
}

// Fail answers err with the status core.Status maps it to, and the
// headers that go with it (see failure). The server's own failures (500)
// are logged.
func Fail(w http.ResponseWriter, log *slog.Logger, err error) {
	status := failure(log, err, w.Header().Set)
	WriteError(w, status, err)
}

// failure returns the status core.Status maps err to, after setting with
// set the headers that go with it: Retry-After for a call shed before its
// body, a load refused for the memory budget, or a call refused by an
// open circuit breaker (with FallbackHeader "unavailable"). It logs the
// server's own failures (500), at most one a second.
func failure(log *slog.Logger, err error, set func(name, value string)) int {
	status := core.Status(err)
	if after, ok := core.RetryAfter(err); ok {
		set("Retry-After", after)
		if core.CircuitOpen(err) {
			set(core.FallbackHeader, core.ViaUnavailable)
		}
	} else if core.Shed(err) {
		set("Retry-After", "1") // the body stays unread
	}
	if status == http.StatusInternalServerError {
		if n, ok := failedLog.Allow(); ok {
			log.Error("request failed", "err", err, "unlogged_since", n)
		}
	}
	return status
}

// failedLog bounds failure's log of the server's own failures to a line
// a second: a client whose every request fails must not fill the log.
var failedLog lograte.Limiter

// errorBody is err as the protocol's error object, in JSON.
func errorBody(err error) []byte {
	body, merr := json.Marshal(protocol.Error{Error: protocol.ClipMessage(err.Error())})
	if merr != nil {
		return []byte(`{"error":"encode response"}`)
	}
	return body
}

func (s *API) fail(w http.ResponseWriter, err error) { Fail(w, s.log, err) }

// model resolves the {model} and optional {version} path values, loading
// the version first where the repository loads on demand.
func (s *API) model(r *http.Request) (*runner.Model, error) {
	return s.Acquire(r.Context(), r.PathValue("model"), r.PathValue("version"))
}

func (s *API) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !s.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *API) serveServerMetadata(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, protocol.ServerMetadata{Name: s.opts.Name, Version: s.opts.Version, Extensions: core.Extensions()})
}

// TensorMetadata describes inputs or outputs as the model metadata does;
// an output converted from a value that is not a tensor says what its
// elements hold, and its type.
func TensorMetadata(specs []runner.TensorSpec) []protocol.TensorMetadata {
	out := make([]protocol.TensorMetadata, len(specs))
	for i, t := range specs {
		out[i] = protocol.TensorMetadata{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape}
		if t.Content != "" {
			out[i].Parameters = protocol.Parameters{protocol.ParamContentType: t.Content, protocol.ParamONNXType: t.ONNXType}
		}
	}
	return out
}

// UnservedParameters are the model metadata's parameters that name each
// output that is not served, with its type and the reason; nil when there
// is none.
func UnservedParameters(unserved []runner.UnservedOutput) protocol.Parameters {
	if len(unserved) == 0 {
		return nil
	}
	p := protocol.Parameters{}
	for _, u := range unserved {
		p[protocol.ParamUnservedOutput+u.Name] = u.ONNXType + ": " + u.Reason
	}
	return p
}

func (s *API) serveModelMetadata(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	meta := m.Metadata()
	WriteJSON(w, http.StatusOK, protocol.ModelMetadata{Name: meta.Name, Versions: s.ReadyVersions(meta.Name), Platform: meta.Platform,
		Inputs: TensorMetadata(meta.Inputs), Outputs: TensorMetadata(meta.Outputs), Parameters: UnservedParameters(meta.Unserved)})
}

func (s *API) serveModelReady(w http.ResponseWriter, r *http.Request) {
	if !s.ModelReady(r.PathValue("model"), r.PathValue("version")) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// StatDuration is a count of requests and their cumulative time, in
// nanoseconds.
type StatDuration struct {
	Count int64 `json:"count"`
	Ns    int64 `json:"ns"`
}

// ModelStats is one model version's entry in Triton's statistics
// extension.
type ModelStats struct {
	Name           string                  `json:"name"`
	Version        string                  `json:"version"`
	LastInference  int64                   `json:"last_inference"` // ms since the epoch
	InferenceCount int64                   `json:"inference_count"`
	ExecutionCount int64                   `json:"execution_count"`
	InferenceStats map[string]StatDuration `json:"inference_stats"`
}

// serveModelStats answers Triton's statistics extension, the cumulative
// counts and nanoseconds perf_analyzer differences between two reads.
func (s *API) serveModelStats(w http.ResponseWriter, r *http.Request) {
	all, err := s.Stats(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		s.fail(w, err)
		return
	}
	out := []ModelStats{}
	for _, vs := range all {
		x := vs.Stats
		ms := ModelStats{Name: vs.Name, Version: vs.Version, InferenceCount: x.Rows, ExecutionCount: x.Executions,
			InferenceStats: map[string]StatDuration{
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
			ms.InferenceStats["cache_hit"] = StatDuration{c.Hits, int64(c.HitTime)}
			ms.InferenceStats["cache_miss"] = StatDuration{c.Misses, int64(c.MissTime)}
		}
		if !x.LastInference.IsZero() {
			ms.LastInference = x.LastInference.UnixMilli()
		}
		out = append(out, ms)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"model_stats": out})
}

// ServeRepositoryIndex answers POST /v2/repository/index: every model
// version the repository knows, loaded or not, with its state, and a
// loaded version's measured memory and every version's last use (see
// protocol.IndexEntry).
func (s *API) ServeRepositoryIndex(w http.ResponseWriter, r *http.Request) {
	// Triton's index request: {"repository_name": "", "ready": true} asks
	// for the versions ready to serve alone; no body, all of them. The
	// server has one repository, whatever its name.
	var req struct {
		RepositoryName string `json:"repository_name"`
		Ready          bool   `json:"ready"`
	}
	if r.ContentLength != 0 {
		if err := DecodeBody(w, r, 64<<10, &req); err != nil && !errors.Is(err, errEmptyBody) {
			WriteError(w, http.StatusBadRequest, err)
			return
		}
	}
	idx := []protocol.IndexEntry{}
	for _, st := range s.Repository().Index() {
		if req.Ready && st.State != runner.StateReady {
			continue
		}
		e := protocol.IndexEntry{Name: st.Name, Version: strconv.FormatInt(st.Version, 10), State: st.State, Reason: st.Reason}
		if st.State == runner.StateReady {
			e.LoadedBytes = st.Bytes
		}
		if !st.LastUsed.IsZero() {
			e.LastUsed = st.LastUsed.UnixMilli()
		}
		idx = append(idx, e)
	}
	WriteJSON(w, http.StatusOK, idx)
}
