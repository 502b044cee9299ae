package pipeline_test

import (
	"net/http"
	"strings"
	"testing"
)

// pairConfig runs one image through the same model twice, in two steps
// that need nothing of each other.
const pairConfig = `
pipeline:
  inputs: [{name: image, datatype: FP32, shape: [-1, 784]}]
  outputs: [a, b]
  max_parallel_steps: %s
  steps:
    - {name: left, model: waiting, input_map: {image: image}, output_map: {probabilities: a}}
    - {name: right, model: waiting, input_map: {image: image}, output_map: {probabilities: b}}
`

// waitingConfig makes a model wait up to 30 s for a second row, and run
// at once with two: a step that is the only one calling it runs alone,
// late; two steps calling it together form one batch of 2.
const waitingConfig = `
max_batch_size: 2
dynamic_batching:
  max_queue_delay: 30s
  preferred_batch_sizes: [2]
`

// Steps that need nothing of each other run at the same time, so that
// their two calls of one model meet in one batch; with
// max_parallel_steps 1 they run one after the other; a failing step stops
// its sibling, which is not counted as a failure.
func TestIndependentStepsRunTogether(t *testing.T) {
	dir := t.TempDir()
	copyModel(t, dir, "mlp", "waiting")
	writeFile(t, dir, "waiting/config.yaml", []byte(waitingConfig))
	writeFile(t, dir, "pair/config.yaml", []byte(strings.Replace(pairConfig, "%s", "0", 1)))
	// broken's left step waits for a second row that never comes, while
	// flat fails at once: 784 values do not make rows of 3.
	broken := strings.Replace(pairConfig, "%s", "2", 1)
	broken = strings.Replace(broken, "outputs: [a, b]", "outputs: [a, flat]", 1)
	broken = strings.Replace(broken, "{name: right, model: waiting, input_map: {image: image}, output_map: {probabilities: b}}",
		"{name: flat, op: reshape, params: {shape: [-1, 3]}, input_map: {x: image}, output_map: {y: flat}}", 1)
	writeFile(t, dir, "broken/config.yaml", []byte(broken))
	url, _ := serve(t, dir)

	r := inferHTTP(t, url, "pair", true, nil, image784(1))
	if r.status != http.StatusOK || r.header.Get("Inference-Batch-Size") != "2" {
		t.Fatalf("%d, batch %q %s: want both steps in one batch of 2", r.status, r.header.Get("Inference-Batch-Size"), r.body)
	}
	if st := r.header.Get("Server-Timing"); !strings.Contains(st, "left") || !strings.Contains(st, "right") {
		t.Errorf("Server-Timing %q lacks the steps", st)
	}

	r = inferHTTP(t, url, "broken", true, nil, image784(1))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `step "flat" (op reshape)`) {
		t.Fatalf("a failing branch: %d %s, want a 400 naming step flat", r.status, r.body)
	}
	body := metrics(t, url)
	for _, series := range []string{
		`infer_pipeline_step_failures_total{model="broken",step="flat",version="1"} 1`,
		`infer_pipeline_step_failures_total{model="broken",step="left",version="1"} 0`,
	} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if strings.Contains(body, `infer_pipeline_step_duration_seconds_count{model="broken",step="left",version="1"}`) {
		t.Errorf("step left finished: want it stopped when step flat failed")
	}
}
