package server

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/admin"
	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// sendImages sends n one-row mlp requests of uniform random pixels to
// version over loopback, pixel 100 raised by shift.
func sendImages(t *testing.T, base, version string, r *rand.Rand, n int, shift float32) {
	t.Helper()
	for range n {
		v := make([]float32, 784)
		for i := range v {
			v[i] = r.Float32()
		}
		v[100] += shift
		body, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, v)}}).Encode(true)
		rep := call(t, "POST", base+"/v2/models/mlp/versions/"+version+"/infer", body, map[string]string{protocol.HeaderContentLength: strconvI(hl)})
		if rep.status != 200 {
			t.Fatalf("infer: %d %s", rep.status, rep.body)
		}
	}
}

// quality flushes a version's monitor and returns its state as the quality
// endpoint answers it.
func quality(t *testing.T, s *Server, base string, version int64) drift.Quality {
	t.Helper()
	mon, err := s.MonitorOf("mlp", version)
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := call(t, "GET", base+"/v2/models/mlp/versions/"+strconvI(version)+"/quality", nil, nil)
	var ans httpapi.QualityAnswer
	if err := json.Unmarshal(r.body, &ans); r.status != 200 || err != nil || len(ans.Versions) != 1 {
		t.Fatalf("quality: %d %s", r.status, r.body)
	}
	return ans.Versions[0]
}

// A baseline captured from a live server over HTTP (what `infer monitor
// baseline` does), set on another version through the admin API, is what
// that version's windows are then compared with: traffic like the
// baseline's raises no alarm, a shift of one pixel's values is flagged at
// that pixel. A version's live statistics serve as a baseline too, and
// DELETE clears it.
func TestCapturedBaselineSetAtRuntime(t *testing.T) {
	dir := twoVersions(t)
	os.WriteFile(filepath.Join(dir, "mlp", "config.yaml"), []byte("monitor:\n  sample: 1\n  window: 1h\n"), 0o644)
	s, hs := start(t, openRepo(t, dir), Options{AdminToken: "secret"})
	auth := map[string]string{"Authorization": "Bearer secret"}
	r := rand.New(rand.NewPCG(21, 2))
	sendImages(t, hs.URL, "1", r, 300, 0)

	// The window open when the capture starts counts whole, so the
	// requests above are in it however short the capture.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := drift.Capture(ctx, httpClient, hs.URL, "mlp", 1, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	img, ok := b.Tensor(drift.Input, "image")
	if b.Model != "mlp" || b.Version != 1 || b.Requests != 300 || !ok || img.Positions == nil || img.Positions.Width != 784 {
		t.Fatalf("captured %s v%d, %d requests, image %+v: want mlp v1, 300 requests, 784 position means", b.Model, b.Version, b.Requests, img.Positions)
	}
	if out, ok := b.Tensor(drift.Output, "probabilities"); !ok || out.Rows != 300 {
		t.Fatalf("captured no output rows: %d tensors", len(b.Tensors))
	}
	file := filepath.Join(t.TempDir(), "baseline.json")
	if err := b.WriteFile(file); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)

	put := func(query string, body []byte) (int, admin.BaselineAnswer) {
		t.Helper()
		rep := call(t, "PUT", hs.URL+"/v2/admin/models/mlp/versions/2/baseline"+query, body, auth)
		var ans admin.BaselineAnswer
		json.Unmarshal(rep.body, &ans)
		if rep.status != 200 {
			t.Logf("PUT baseline%s: %d %s", query, rep.status, rep.body)
		}
		return rep.status, ans
	}
	if st, ans := put("", data); st != 200 || ans.Version != 2 || ans.Baseline == nil || ans.Baseline.Requests != 300 {
		t.Fatalf("PUT the captured baseline: %d %+v", st, ans)
	}
	sendImages(t, hs.URL, "2", r, 300, 0)
	q := quality(t, s, hs.URL, 2)
	if q.Drift == nil || q.Drift.Reference.Requests != 300 || q.Drift.Alarm() {
		t.Fatalf("traffic like the baseline's: drift %+v", q.Drift)
	}
	sendImages(t, hs.URL, "2", r, 300, 0.5)
	q = quality(t, s, hs.URL, 2)
	if !slices.Contains(q.Drift.Drifted, "input/image/"+drift.FeaturePositionMean) {
		t.Fatalf("pixel 100 raised by 0.5: drifted %v", q.Drift.Drifted)
	}
	for _, sc := range q.Drift.Scores {
		if sc.Test == drift.TestMeanZ && sc.Role == drift.Input && (sc.Position == nil || *sc.Position != 100) {
			t.Errorf("the pixel that moved most: %+v, want 100", sc)
		}
	}

	// Version 1's live windows as version 2's baseline.
	if st, ans := put("?from_version=1&last=1h", nil); st != 200 || ans.Baseline == nil || ans.Baseline.Requests != 300 {
		t.Fatalf("PUT from version 1: %d %+v", st, ans)
	}
	rep := call(t, "DELETE", hs.URL+"/v2/admin/models/mlp/versions/2/baseline", nil, auth)
	if rep.status != 200 || strings.Contains(string(rep.body), `"requests"`) {
		t.Fatalf("DELETE: %d %s", rep.status, rep.body)
	}
	sendImages(t, hs.URL, "2", r, 10, 0)
	if q := quality(t, s, hs.URL, 2); q.Baseline != nil || q.Drift != nil {
		t.Errorf("after DELETE: baseline %+v, drift %+v", q.Baseline, q.Drift)
	}

	// Bad requests say what was wrong.
	for _, c := range []struct {
		query, body string
		status      int
		says        string
	}{
		{"", "", http.StatusBadRequest, "from_version"},
		{"", `{"tensors":[{"name":"image","role":"middle"}]}`, http.StatusBadRequest, "role"},
		{"", `{"tensors":`, http.StatusBadRequest, "baseline"},
		{"?from_version=one", "", http.StatusBadRequest, "from_version"},
		{"?from_version=1&last=soon", "", http.StatusBadRequest, "last"},
		{"?from_version=9", "", http.StatusNotFound, "9"},
		// Checked as JSON text before it is decoded, quoting none of it.
		{"", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, http.StatusBadRequest, "the body nests 101 deep, at most 64"},
		{"", `{"tensors":[{"name":"` + strings.Repeat("n", 3000) + `","role":"middle"}]}`, http.StatusBadRequest, `tensor \"nnnnnnnnnn`},
		{"?from_version=1&last=" + strings.Repeat("s", 3000), "", http.StatusBadRequest, "(3000 bytes)"},
	} {
		rep := call(t, "PUT", hs.URL+"/v2/admin/models/mlp/versions/2/baseline"+c.query, []byte(c.body), auth)
		if rep.status != c.status || !strings.Contains(string(rep.body), c.says) || len(rep.body) > 400 {
			t.Errorf("PUT%s %q: %d %s; want %d naming %q", c.query, c.body, rep.status, rep.body, c.status, c.says)
		}
	}
}
