package server

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// monitoredConfig is mlp's config with every request sampled, in windows
// of 200ms of the bubble's clock.
const monitoredConfig = `max_batch_size: 64
monitor:
  sample: 1
  window: 200ms
`

// loadRandom sends unversioned mlp requests of random images, in process,
// from a few clients until the test ends.
func loadRandom(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	h := s.Handler()
	for c := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 21))
			for ctx.Err() == nil {
				v := make([]float32, 784)
				for i := range v {
					v[i] = r.Float32()
				}
				body, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, v)}}).Encode(true)
				req := httptest.NewRequestWithContext(ctx, "POST", "/v2/models/mlp/infer", bytes.NewReader(body))
				req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
				h.ServeHTTP(httptest.NewRecorder(), req)
				time.Sleep(pace)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// Version 2 is mlp with class 3's logit raised: as fast as version 1 and
// never failing, but its outputs lean to one class. The canary is rolled
// back at its first step on the output drift criterion alone.
func TestCanaryRollsBackOnOutputDrift(t *testing.T) {
	dir := twoVersions(t)
	biased, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "mlp-biased.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "mlp", "2", "model.onnx"), biased, 0o644)
	os.WriteFile(filepath.Join(dir, "mlp", "config.yaml"), []byte(monitoredConfig), 0o644)
	synctest.Test(t, func(t *testing.T) {
		s := serveInBubble(t, dir, Options{})
		loadRandom(t, s)
		sp := withModel(spec(50, 100))
		sp.Analysis.MaxP99Ratio, sp.Analysis.MaxOutputDrift = 0, 0.25
		sp.Interval = deploy.Duration(time.Second)
		if _, err := s.Rollouts().Start(sp, "test"); err != nil {
			t.Fatal(err)
		}
		st := waitPhase(t, s, deploy.Promoted, deploy.RolledBack)
		var judged deploy.Event
		for _, e := range st.History {
			if e.Kind == deploy.Fail {
				judged = e
			}
		}
		if st.Phase != deploy.RolledBack || st.Step != 0 || !strings.Contains(judged.Reason, "output drift") {
			b, _ := json.MarshalIndent(st.History, "", " ")
			t.Fatalf("phase %s at step %d: %s\n%s", st.Phase, st.Step, judged.Reason, b)
		}
		if f := judged.Figures; f["candidate_success_rate"] != 1 || f["output_psi"] <= 0.25 {
			t.Errorf("figures %v: want every candidate request answered and an output PSI above 0.25", f)
		}
		t.Log(judged.Reason)

		// Both versions' monitors answer on the quality endpoint, and
		// their counters are in the metrics.
		r := serve(s.Handler(), "GET", "/v2/models/mlp/quality", nil)
		var ans httpapi.QualityAnswer
		if err := json.Unmarshal(r.body, &ans); r.status != 200 || err != nil || len(ans.Versions) != 2 {
			t.Fatalf("quality: %d %s", r.status, r.body)
		}
		if ans.Versions[0].Sampled == 0 || ans.Versions[0].Last == nil {
			t.Errorf("version 1's quality %+v: want samples and a closed window", ans.Versions[0])
		}
		if m := scrape(t, s); !strings.Contains(m, `infer_quality_samples_total{model="mlp",version="2"}`) {
			t.Errorf("metrics lack infer_quality_samples_total for version 2")
		}
	})
}

// A model without monitoring says how to turn it on; a bad since names
// the parameter.
func TestQualityEndpointErrors(t *testing.T) {
	_, hs := start(t, openRepo(t, twoVersions(t)), Options{})
	r := call(t, "GET", hs.URL+"/v2/models/mlp/quality", nil, nil)
	if r.status != 404 || !strings.Contains(string(r.body), "monitor.sample") {
		t.Errorf("unmonitored: %d %s", r.status, r.body)
	}
	r = call(t, "GET", hs.URL+"/v2/models/mlp/quality?since=yesterday", nil, nil)
	if r.status != 400 || !strings.Contains(string(r.body), "since") {
		t.Errorf("bad since: %d %s", r.status, r.body)
	}
	r = call(t, "GET", hs.URL+"/v2/models/nope/quality", nil, nil)
	if r.status != 404 {
		t.Errorf("unknown model: %d %s", r.status, r.body)
	}
}
