package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// infer bench --models against a real infer serve: each request goes to
// one of the models named (a glob among them), in Zipf's proportions, and
// the report gives every model its own figures.
func TestBenchModelsZipf(t *testing.T) {
	httpAddr, grpcAddr, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	// H(4) = 25/12: shares 12/25, 6/25, 4/25, 3/25 with s = 1.
	order := []string{"mlp", "multi-io", "all-types", "fixed-shape"}
	want := []float64{12.0 / 25, 6.0 / 25, 4.0 / 25, 3.0 / 25}
	for _, tc := range []struct{ protocol, url string }{
		{loadgen.ProtoHTTPBinary, "http://" + httpAddr},
		{loadgen.ProtoGRPC, grpcAddr},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			o := benchDefaults(tc.url, tc.protocol)
			o.models, o.zipf, o.requests, o.concurrency = []string{"m*", "all-types", "fixed-shape"}, 1, 800, 4
			var out bytes.Buffer
			if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			var r loadgen.Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if r.Requests != 800 || r.OK != 800 || r.Model != "mlp..fixed-shape (4 models)" || len(r.Models) != 4 {
				t.Fatalf("report: %d requests, %d ok, model %q, %d models", r.Requests, r.OK, r.Model, len(r.Models))
			}
			var sum int64
			for k, m := range r.Models {
				sum += m.Requests
				if m.Model != order[k] || m.Errors != 0 || math.Abs(m.Share-want[k]) > 0.05 || m.Latency.P99 <= 0 {
					t.Errorf("model %d: %+v, want %s with a share near %.3f", k, m, order[k], want[k])
				}
			}
			if sum != r.Requests {
				t.Errorf("models' requests sum to %d of %d", sum, r.Requests)
			}
		})
	}
	// The text report lists them.
	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.models, o.zipf, o.requests, o.out.format = []string{"mlp", "multi-io"}, 0, 50, formatText
	var out bytes.Buffer
	if err := runBench(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "multi-io") || !strings.Contains(out.String(), "share") {
		t.Errorf("text report without the models' table:\n%s", out.String())
	}
}

// Bad --models input gets one line naming what was wrong.
func TestBenchModelsBadInput(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()
	for _, tc := range []struct {
		name string
		edit func(*benchOptions)
		want string
	}{
		{"with -m", func(o *benchOptions) { o.model = "mlp" }, "name the models twice"},
		{"no match", func(o *benchOptions) { o.models = []string{"zz*"} }, `--models "zz*" matches none`},
		{"bad glob", func(o *benchOptions) { o.models = []string{"[m"} }, `--models "[m"`},
		{"unknown model", func(o *benchOptions) { o.models = []string{"mlp", "nope"} }, `model "nope"`},
		{"negative exponent", func(o *benchOptions) { o.zipf = -1 }, "--zipf -1"},
		{"openai", func(o *benchOptions) { o.protocol = loadgen.ProtoOpenAI }, "--models sends Open Inference Protocol"},
		{"input data", func(o *benchOptions) { o.inputData = "x.json" }, "--input-data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
			o.models, o.zipf, o.requests = []string{"mlp", "multi-io"}, 1, 5
			tc.edit(&o)
			err := runBench(context.Background(), o, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
