package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// plainV2 is an Open Inference Protocol server as the protocol's minimum
// has it (MLServer-like): server and model metadata, and JSON tensors
// only, with no binary tensor extension, no repository index and no
// statistics. Its models sum the rows of a [-1, 4] FP32 input, "small"
// two rows at most; a body it cannot read gets 400 with the protocol's
// {"error": ...}.
func plainV2(t *testing.T, infers *atomic.Int64) *httptest.Server {
	t.Helper()
	fail := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"name": "plain", "version": "0.1", "extensions": []string{}})
	})
	mux.HandleFunc("GET /v2/models/{model}", func(w http.ResponseWriter, r *http.Request) {
		if m := r.PathValue("model"); m != "sum" && m != "small" {
			fail(w, http.StatusNotFound, "no model "+m)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"name": r.PathValue("model"), "versions": []string{"1"}, "platform": "python",
			"inputs":  []map[string]any{{"name": "x", "datatype": "FP32", "shape": []int64{-1, 4}}},
			"outputs": []map[string]any{{"name": "y", "datatype": "FP32", "shape": []int64{-1}}}})
	})
	mux.HandleFunc("POST /v2/models/{model}/infer", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Inference-Header-Content-Length") != "" {
			fail(w, http.StatusBadRequest, "binary tensor data is not supported")
			return
		}
		var req struct {
			Inputs []struct {
				Name     string    `json:"name"`
				Shape    []int64   `json:"shape"`
				Datatype string    `json:"datatype"`
				Data     []float32 `json:"data"`
			} `json:"inputs"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		if len(req.Inputs) != 1 || req.Inputs[0].Name != "x" || req.Inputs[0].Datatype != "FP32" || len(req.Inputs[0].Shape) != 2 ||
			req.Inputs[0].Shape[1] != 4 || int64(len(req.Inputs[0].Data)) != req.Inputs[0].Shape[0]*4 {
			fail(w, http.StatusBadRequest, "input x: want FP32 [n, 4] with n*4 values")
			return
		}
		in := req.Inputs[0]
		if r.PathValue("model") == "small" && in.Shape[0] > 2 {
			fail(w, http.StatusBadRequest, fmt.Sprintf("input x: a batch of %d rows, at most 2", in.Shape[0]))
			return
		}
		sums := make([]float32, in.Shape[0])
		for i, v := range in.Data {
			sums[i/4] += v
		}
		infers.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"model_name": "sum", "outputs": []map[string]any{
			{"name": "y", "datatype": "FP32", "shape": []int64{in.Shape[0]}, "data": sums}}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fail(w, http.StatusNotFound, "no route "+r.URL.Path) })
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// infer bench's defaults against a v2 server without the binary
// extension: it reads the server's extensions and sends JSON, with no
// error; without --model it says how to name one; a refusal shows the
// server's own message.
func TestBenchAgainstAJSONOnlyV2Server(t *testing.T) {
	var infers atomic.Int64
	s := plainV2(t, &infers)
	for _, rows := range []int64{1, 3} {
		o := benchDefaults(s.URL, loadgen.ProtoHTTPBinary) // the flag's default
		o.model, o.requests, o.concurrency, o.rows = "sum", 200, 4, rows
		infers.Store(0)
		var out, errOut bytes.Buffer
		if err := runBench(context.Background(), o, &out, &errOut); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		var r loadgen.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if r.Requests != 200 || r.OK != 200 || len(r.Errors) != 0 || r.Protocol != loadgen.ProtoHTTPJSON || infers.Load() != 200 {
			t.Fatalf("rows %d: report %+v, %d inferences", rows, r, infers.Load())
		}
		if !strings.Contains(errOut.String(), "does not advertise the binary tensor extension") {
			t.Errorf("no word of the switch to JSON: %s", errOut.String())
		}
	}

	o := benchDefaults(s.URL, loadgen.ProtoHTTPBinary)
	o.requests = 10
	err := runBench(context.Background(), o, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no --model given") || !strings.Contains(err.Error(), "--model NAME") {
		t.Fatalf("without --model: %v", err)
	}

	// The server's refusal, in its own words.
	o = benchDefaults(s.URL, loadgen.ProtoHTTPJSON)
	o.model, o.requests, o.concurrency, o.rows = "small", 20, 2, 3
	err = runBench(context.Background(), o, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "every request failed: status 400: input x: a batch of 3 rows, at most 2") {
		t.Fatalf("a refused batch: %v", err)
	}
}
