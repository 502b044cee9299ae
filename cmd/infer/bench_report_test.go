package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// infer bench says what happened: the server's own message with the
// status, a hint when the protocol does not fit the model, successful
// answers apart from those sent, a line for a met objective, and the
// run's settings in the JSON report.
func TestBenchSaysWhatHappened(t *testing.T) {
	httpAddr, _, stop, done := startServe(t, serveOptions{})
	defer func() { stop(); <-done }()

	o := benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests = "tiny-gpt", 5
	var out, errOut bytes.Buffer
	err := runBench(context.Background(), o, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "status 400: ") || !strings.Contains(err.Error(), `model "tiny-gpt" generates text: use /v2/models/tiny-gpt/generate or /v1/completions`) ||
		!strings.Contains(err.Error(), "--protocol openai -m tiny-gpt") {
		t.Fatalf("a text generator benchmarked over tensors: %v", err)
	}
	var failed loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &failed); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if failed.AchievedRate != 0 || failed.SentRate <= 0 || !strings.Contains(failed.ErrorMessages["status 400"], "generates text") {
		t.Fatalf("a run of failures: achieved %v/s, sent %v/s, messages %v", failed.AchievedRate, failed.SentRate, failed.ErrorMessages)
	}

	o = benchDefaults("http://"+httpAddr, loadgen.ProtoHTTPBinary)
	o.model, o.requests, o.concurrency, o.slo = "mlp", 200, 2, "p99<30s,errors<1%"
	o.settings = map[string]string{"model": "mlp", "requests": "200"}
	out.Reset()
	errOut.Reset()
	if err := runBench(context.Background(), o, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"infer bench: SLO met: p99<30s: p99 is ", "infer bench: SLO met: errors<1%: error rate 0.00%"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	var r loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Settings["model"] != "mlp" || r.Settings["requests"] != "200" || r.AchievedRate <= 0 || r.AchievedRate != r.SentRate {
		t.Fatalf("settings %v, achieved %v/s, sent %v/s", r.Settings, r.AchievedRate, r.SentRate)
	}

	// Through the command: every flag's value is recorded.
	outText, err := run(t, "bench", "--server", "http://"+httpAddr, "-m", "mlp", "--requests", "20", "-c", "2", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, outText)
	}
	var viaCLI loadgen.Report
	if err := json.Unmarshal([]byte(outText[:strings.LastIndex(outText, "}")+1]), &viaCLI); err != nil {
		t.Fatalf("%v\n%s", err, outText)
	}
	if viaCLI.Settings["server"] != "http://"+httpAddr || viaCLI.Settings["concurrency"] != "2" || viaCLI.Settings["duration"] != "10s" || viaCLI.Settings["protocol"] != "http-binary" {
		t.Fatalf("settings recorded %v", viaCLI.Settings)
	}
	if _, err := run(t, "bench", "http://"+httpAddr, "--server", "http://other:1", "-m", "mlp"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("two servers: %v", err)
	}
}
