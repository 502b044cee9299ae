package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tui"
)

// mlpRepository returns a repository folder holding mlp version 1.
func mlpRepository(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "mlp", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "mlp", "1", "model.onnx"), data, 0o644)
	return dir
}

// `infer monitor baseline` against a live `infer serve` whose mlp samples
// every request: the baseline file holds the requests sent before the
// capture (the window open at its start counts whole), its inputs' and
// outputs' statistics; and `infer top` shows the version monitored, with
// no baseline yet.
func TestMonitorBaselineFromALiveServer(t *testing.T) {
	dir := mlpRepository(t)
	os.WriteFile(filepath.Join(dir, "mlp", "config.yaml"), []byte("monitor:\n  sample: 1\n  window: 1h\n"), 0o644)
	addrs, stop, done := startServeAddrs(t, serveOptions{path: dir})
	defer func() { stop(); <-done }()
	base := "http://" + addrs["HTTP"]
	mon, err := monitor.New(monitor.Options{Servers: []monitor.Server{{API: base, Metrics: "http://" + addrs["metrics"]}}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mon.Poll(context.Background())

	v := make([]float32, 784)
	for i := range 120 {
		v[i%784] = 1
		body, hl, _ := (&protocol.InferRequest{Inputs: []tensor.Tensor{tensor.New("image", []int64{1, 784}, v)}}).Encode(true)
		req, _ := http.NewRequest("POST", base+"/v2/models/mlp/infer", bytes.NewReader(body))
		req.Header.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("infer: %s", resp.Status)
		}
	}

	file := filepath.Join(t.TempDir(), "baseline.json")
	out, err := run(t, "monitor", "baseline", "--server", base, "-m", "mlp", "-d", "10ms", "--out", file)
	if err != nil || !strings.Contains(out, "120 sampled requests") {
		t.Fatalf("monitor baseline: %v\n%s", err, out)
	}
	b, err := drift.ReadSummary(file)
	if err != nil {
		t.Fatal(err)
	}
	in, ok1 := b.Tensor(drift.Input, "image")
	outT, ok2 := b.Tensor(drift.Output, "probabilities")
	if b.Model != "mlp" || b.Version != 1 || !ok1 || !ok2 || in.Rows != 120 || outT.Rows != 120 || in.Positions == nil {
		t.Fatalf("baseline of %s v%d: input %v (%d rows), output %v (%d rows)", b.Model, b.Version, ok1, in.Rows, ok2, outT.Rows)
	}

	screen := tui.PlainFrame(tui.TopOptions{Servers: []string{base}}, mon.Poll(context.Background()), 120)
	if !strings.Contains(screen, "SAMPLED/s") || !strings.Contains(screen, "no baseline yet") {
		t.Fatalf("top lacks mlp's quality:\n%s", screen)
	}

	// An unknown model is refused at once, not after the hour asked for.
	_, err = run(t, "monitor", "baseline", "--server", base, "-m", "nope", "-d", "1h")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("an unknown model: %v", err)
	}
}
