package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// onDemandRepository is mlp's versions 1 and 2 (twoVersions) in
// on-demand mode.
func onDemandRepository(t *testing.T, ctl runner.Control) *runner.Repository {
	t.Helper()
	ctl.Mode = runner.ControlOnDemand
	repo, err := runner.Open(twoVersions(t), runner.LoadOptions{Isolation: runner.IsolationNone, Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

var mlpBody = `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 783) + `0.5]}]}`

// A request for a model that is not loaded waits for its load and is
// answered; the load is counted and timed.
func TestOnDemandRequestLoadsTheModel(t *testing.T) {
	s, hs := start(t, onDemandRepository(t, runner.Control{}), Options{})
	if r := call(t, "GET", hs.URL+"/v2/models/mlp/versions/1/ready", nil, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("ready before any request: %d, want 503 (not loaded; readiness never loads)", r.status)
	}
	if r := call(t, "GET", hs.URL+"/v2/health/ready", nil, nil); r.status != http.StatusOK {
		t.Errorf("server ready with every version unloaded: %d, want 200 (each loads at its first request)", r.status)
	}
	if r := call(t, "POST", hs.URL+"/v2/models/mlp/versions/1/infer", []byte(mlpBody), nil); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	rec := httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if n := metricValue(t, body, `infer_model_loads_total{model="mlp",reason="on_demand"}`); n != 1 {
		t.Errorf("loads of mlp: %v, want 1", n)
	}
	if n := metricValue(t, body, `infer_model_cold_start_seconds_count{model="mlp"}`); n != 1 {
		t.Errorf("cold starts of mlp: %v, want 1", n)
	}
	if n := metricValue(t, body, `infer_model_load_wait_seconds_count{model="mlp"}`); n != 1 {
		t.Errorf("first-request waits of mlp: %v, want 1", n)
	}
	if strings.Contains(body, `infer_model_loaded_bytes{model="mlp",version="2"}`) {
		t.Error("version 2 was never asked for, yet is reported loaded")
	}
}

// A version larger than the whole budget is a 503 naming the model, the
// budget and the fix, with no Retry-After: no wait makes room for it.
func TestMemoryBudgetRefusalIs503NamingTheFix(t *testing.T) {
	_, hs := start(t, onDemandRepository(t, runner.Control{MemoryBudget: 4096}), Options{})
	r := call(t, "POST", hs.URL+"/v2/models/mlp/versions/2/infer", []byte(mlpBody), nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("over budget: %d %s, want 503", r.status, r.body)
	}
	if after := r.header.Get("Retry-After"); after != "" {
		t.Errorf("Retry-After %q for a version larger than the whole budget, want none", after)
	}
	for _, want := range []string{"memory budget", `model \"mlp\" version 2`, "4.0 KiB", "raise --memory-budget"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("body %s does not say %q", r.body, want)
		}
	}
}

// An unloaded version's request series leave the metrics, as Triton's do,
// so that loading and unloading on demand adds no series without bound;
// loaded again, it counts from zero.
func TestUnloadedVersionLeavesTheMetrics(t *testing.T) {
	repo := onDemandRepository(t, runner.Control{})
	s, hs := start(t, repo, Options{})
	scrape := func() string {
		rec := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	served := `infer_requests_total{model="mlp",outcome="success",protocol="http",version="1"}`
	infer := func() {
		t.Helper()
		if r := call(t, "POST", hs.URL+"/v2/models/mlp/versions/1/infer", []byte(mlpBody), nil); r.status != http.StatusOK {
			t.Fatalf("request: %d %s", r.status, r.body)
		}
	}
	infer()
	infer()
	if n := metricValue(t, scrape(), served); n != 2 {
		t.Fatalf("served before the unload: %v, want 2", n)
	}
	if err := repo.Unload("mlp"); err != nil {
		t.Fatal(err)
	}
	// The repository's own figures (infer_model_ready 0) stay: the
	// version is known, unloaded.
	if body := scrape(); strings.Contains(body, `infer_request`) {
		t.Fatalf("the unloaded version's request series are still exported:\n%s", grepLines(body, `infer_request`))
	}
	infer()
	if n := metricValue(t, scrape(), served); n != 1 {
		t.Errorf("served after loading again: %v, want 1", n)
	}
}
