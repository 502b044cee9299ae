package server

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	g "github.com/infer-serving/infer/pkg/onnxgraph"
	"github.com/infer-serving/infer/pkg/protocol"
)

// otherMLP builds a model with mlp's interface and different weights:
// a shadow that drifts.
func otherMLP() []byte {
	b := g.NewBuilder("other-mlp")
	x := b.Input("image", g.Float, g.Symbolic("batch"), g.Fixed(784))
	w := make([]float32, 784*10)
	for i := range w {
		w[i] = float32(i%13) / 1000
	}
	logits := b.Op("MatMul", []string{x, b.Init(g.Float32Tensor("w", []int64{784, 10}, w))})
	b.OpNamed("probabilities", "Softmax", []string{logits}, g.AttrInt("axis", -1))
	b.Output("probabilities", g.Float, g.Symbolic("batch"), g.Fixed(10))
	return (&g.Model{Graph: b.Graph}).Encode()
}

// waitShadow polls the model's shadow summary until cond holds.
func waitShadow(t *testing.T, s *Server, cond func(ShadowSummary) bool) ShadowSummary {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		sum, _ := s.ShadowSummary("mlp")
		if cond(sum) {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow summary %+v", sum)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func postImage(t *testing.T, base string, pixel float32) reply {
	t.Helper()
	in := image()
	for i := range 784 {
		putF32(in[0].Data[4*i:], pixel*float32(i%7))
	}
	body, hl, _ := (&protocol.InferRequest{Inputs: in}).Encode(true)
	return call(t, "POST", base+"/v2/models/mlp/infer", body, map[string]string{protocol.HeaderContentLength: strconvI(hl)})
}

func TestShadowComparesAndNeverAnswers(t *testing.T) {
	dir := twoVersions(t) // v2 identical to v1
	repo := openRepo(t, dir)
	s, hs := start(t, repo, Options{})
	if err := s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 1}, Shadow: &deploy.Shadow{Version: 2, Fraction: 1}}, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		r := postImage(t, hs.URL, float32(i)/40)
		if r.status != 200 || !bytes.Contains(r.body, []byte(`"model_version":"1"`)) {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	sum := waitShadow(t, s, func(s ShadowSummary) bool {
		return s.Shadow.Compared+s.Dropped+s.Errors == 40 && s.Noise.Compared == s.Shadow.Compared
	})
	if sum.Errors != 0 || sum.Shadow.Compared < 30 || sum.Shadow.MaxAbsDiff > 1e-5 || sum.Shadow.Top1Agreement != 1 || sum.Noise.MaxAbsDiff > 1e-5 {
		t.Fatalf("identical shadow: %+v", sum)
	}
}

func TestShadowDriftStandsAboveNoise(t *testing.T) {
	dir := twoVersions(t)
	os.WriteFile(filepath.Join(dir, "mlp", "2", "model.onnx"), otherMLP(), 0o644)
	repo := openRepo(t, dir)
	s, hs := start(t, repo, Options{})
	s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 1}, Shadow: &deploy.Shadow{Version: 2, Fraction: 1}}, "test")
	for i := range 30 {
		if r := postImage(t, hs.URL, float32(i+1)/30); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	sum := waitShadow(t, s, func(s ShadowSummary) bool { return s.Shadow.Compared+s.Dropped+s.Errors == 30 })
	if sum.Shadow.MaxAbsDiff < 100*sum.Noise.MaxAbsDiff || sum.Shadow.MaxAbsDiff < 1e-3 || sum.Shadow.Top1Agreement == 1 {
		t.Fatalf("drifting shadow not told from noise: %+v", sum)
	}
}

// A failing shadow changes nothing the client sees: same status, same bytes.
func TestShadowFailuresNeverSurface(t *testing.T) {
	dir := twoVersions(t)
	fixed, _ := os.ReadFile(filepath.Join(bundled, "fixed-shape", "1", "model.onnx")) // refuses mlp's inputs
	os.WriteFile(filepath.Join(dir, "mlp", "2", "model.onnx"), fixed, 0o644)
	repo := openRepo(t, dir)
	s, hs := start(t, repo, Options{})
	s.SetPolicy("mlp", deploy.Weighted(1), "test") // v1, no shadow
	before := postImage(t, hs.URL, 0.5)
	s.SetPolicy("mlp", deploy.Policy{Weights: map[int64]float64{1: 1}, Shadow: &deploy.Shadow{Version: 2, Fraction: 1}}, "test")
	for range 20 {
		after := postImage(t, hs.URL, 0.5)
		if after.status != before.status || !bytes.Equal(after.body, before.body) {
			t.Fatalf("with a failing shadow: %d %s, before %d %s", after.status, after.body, before.status, before.body)
		}
	}
	sum := waitShadow(t, s, func(s ShadowSummary) bool { return s.Errors+s.Dropped == 20 })
	if sum.Shadow.Compared != 0 {
		t.Fatalf("%+v", sum)
	}
	if r := call(t, "GET", adminBase(t, s, hs)+"/v2/admin/models/mlp/shadow", nil, nil); r.status != 200 || !bytes.Contains(r.body, []byte(`"errors":`)) {
		t.Fatalf("summary endpoint: %d %s", r.status, r.body)
	}
}
