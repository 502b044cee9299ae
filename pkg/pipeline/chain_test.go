package pipeline_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// chainConfig chains two bundled models with built-in steps between
// them: mlp's probabilities, their 6 best as a 2x3 matrix, transposed
// (and multiplied by 10) by fixed-shape.
const chainConfig = `
pipeline:
  inputs:
    - {name: image, datatype: FP32, shape: [-1, -1]}
  outputs: [transposed, classes]
  steps:
    - name: classify
      model: mlp
      input_map: {image: image}
      output_map: {probabilities: probs}
    - name: top
      op: top_k
      params: {k: 6}
      input_map: {x: probs}
      output_map: {scores: scores, indices: classes}
    - name: grid
      op: reshape
      params: {shape: [2, 3]}
      input_map: {x: scores}
      output_map: {y: grid}
    - name: transpose
      model: fixed-shape
      input_map: {matrix: grid}
      output_map: {transposed: transposed}
`

// routerConfig sends batches of 4 rows or more, and requests with the
// header X-Tier: gold, to mlp-heavy, and the rest to mlp.
const routerConfig = `
router:
  routes:
    - name: large
      model: mlp-heavy
      when: {batch: {min: 4}}
    - name: gold
      model: mlp-heavy:1
      when: {header: {name: X-Tier, equals: gold}}
  default: mlp
`

func chainRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyModel(t, dir, "mlp", "mlp")
	copyModel(t, dir, "fixed-shape", "fixed-shape")
	writeFile(t, dir, "mlp-heavy/1/model.onnx", readFile(t, "../../testdata/variants/mlp-heavy.onnx"))
	writeFile(t, dir, "grid/config.yaml", []byte(chainConfig))
	writeFile(t, dir, "route/config.yaml", []byte(routerConfig))
	return dir
}

func image784(rows int) tensor.Tensor {
	v := make([]float32, rows*784)
	for i := range v {
		v[i] = float32(i%97) / 97
	}
	return tensor.New("image", []int64{int64(rows), 784}, v)
}

// Two bundled models with built-in steps between them answer what the
// same steps give when each model is called in turn; a bad input at a
// step is a 400 that names the step.
func TestChainOfTwoModels(t *testing.T) {
	url, _ := serve(t, chainRepo(t))
	r := inferHTTP(t, url, "grid", true, nil, image784(1))
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// By hand: mlp, the 6 best, fixed-shape.
	m := inferHTTP(t, url, "mlp", true, nil, image784(1))
	probs, _ := tensor.Values[float32](m.resp.Outputs[0])
	best := make([]float32, 0, 6)
	var classes []int64
	used := map[int]bool{}
	for range 6 {
		k := -1
		for i, p := range probs {
			if !used[i] && (k < 0 || p > probs[k]) {
				k = i
			}
		}
		used[k] = true
		best, classes = append(best, probs[k]), append(classes, int64(k))
	}
	f := inferHTTP(t, url, "fixed-shape", true, nil, tensor.New("matrix", []int64{2, 3}, best))
	want, _ := tensor.Values[float32](f.resp.Outputs[0])
	equalFloats(t, "transpose", output(t, r.resp, "transposed"), []int64{3, 2}, want, 0)
	got, _ := tensor.Values[int64](output(t, r.resp, "classes"))
	if !slices.Equal(got, classes) {
		t.Errorf("top: classes %v, by hand %v", got, classes)
	}

	for _, c := range []struct {
		name  string
		input tensor.Tensor
		step  string
	}{
		{"a row of 783 values", tensor.New("image", []int64{1, 783}, make([]float32, 783)), `step "classify" (model mlp)`},
		{"two rows, 12 scores for a 2x3 grid", image784(2), `step "grid" (op reshape)`},
		{"a pipeline input of another type", tensor.New("image", []int64{1, 784}, make([]int32, 784)), `input "image" is INT32, want FP32`},
	} {
		r := inferHTTP(t, url, "grid", false, nil, c.input)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, c.step) {
			t.Errorf("%s: %d %s, want 400 naming %s", c.name, r.status, r.body, c.step)
		}
	}
}

// A router sends each request by its batch and a header, says the route
// in Inference-Route and counts it in the metrics; a request its rules
// cannot read is a 400 naming the route.
func TestRouterByBatchAndHeader(t *testing.T) {
	url, _ := serve(t, chainRepo(t))
	for _, c := range []struct {
		rows   int
		header map[string]string
		route  string
	}{
		{1, nil, "default"},
		{4, nil, "large"},
		{1, map[string]string{"X-Tier": "gold"}, "gold"},
		{2, map[string]string{"X-Tier": "silver"}, "default"},
	} {
		r := inferHTTP(t, url, "route", true, c.header, image784(c.rows))
		if r.status != http.StatusOK || r.header.Get("Inference-Route") != c.route {
			t.Errorf("%d rows, %v: %d route %q %s, want route %q", c.rows, c.header, r.status, r.header.Get("Inference-Route"), r.body, c.route)
		}
	}
	r := inferHTTP(t, url, "route", false, nil, tensor.New("image", []int64{1, 5}, make([]float32, 5)))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `route "default" (model mlp)`) {
		t.Errorf("a bad row: %d %s, want 400 naming the route", r.status, r.body)
	}
	body := metrics(t, url)
	for _, series := range []string{
		`infer_router_requests_total{model="route",route="default",version="1"} 3`,
		`infer_router_requests_total{model="route",route="large",version="1"} 1`,
		`infer_router_requests_total{model="route",route="gold",version="1"} 1`,
		`infer_pipeline_step_failures_total{model="grid",step="classify",version="1"} 0`,
	} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// A graph that cannot run is refused at load, naming what is wrong.
func TestLoadRefusesBadGraphs(t *testing.T) {
	for _, c := range []struct{ name, config, want string }{
		{"cycle", `
pipeline:
  inputs: [{name: x, datatype: FP32, shape: [-1, 10]}]
  outputs: [b]
  steps:
    - {name: one, op: softmax, input_map: {x: b}, output_map: {y: a}}
    - {name: two, op: softmax, input_map: {x: a}, output_map: {y: b}}
`, "steps one, two wait on each other's outputs (a cycle)"},
		{"type", `
pipeline:
  inputs: [{name: x, datatype: INT64, shape: [-1, 784]}]
  outputs: [p]
  steps:
    - {name: classify, model: mlp, input_map: {image: x}, output_map: {probabilities: p}}
`, `step "classify": model mlp: input "image": the tensor mapped to it is INT64, the model takes FP32`},
		{"shape", `
pipeline:
  inputs: [{name: x, datatype: FP32, shape: [-1, 10]}]
  outputs: [y]
  steps:
    - {name: pool, op: mean_pool, input_map: {x: x}, output_map: {y: y}}
`, `step "pool": input "x" has shape [-1 10], want 3 dimensions`},
		{"unknown op", `
pipeline:
  inputs: [{name: x, datatype: FP32, shape: [-1, 10]}]
  outputs: [y]
  steps:
    - {name: s, op: sigmoid, input_map: {x: x}, output_map: {y: y}}
`, `op "sigmoid": no such op`},
		{"unknown param", `
pipeline:
  inputs: [{name: x, datatype: FP32, shape: [-1, 10]}]
  outputs: [y]
  steps:
    - {name: s, op: top_k, params: {kk: 2}, input_map: {x: x}, output_map: {scores: y}}
`, "params: kk: no such key (the keys here are k, labels)"},
	} {
		dir := t.TempDir()
		copyModel(t, dir, "mlp", "mlp")
		writeFile(t, dir, "p/config.yaml", []byte(c.config))
		repo, err := runner.Open(dir, runner.LoadOptions{Isolation: runner.IsolationNone})
		if repo != nil {
			repo.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
