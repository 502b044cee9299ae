package server

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// grpcCodeOf is the gRPC code each HTTP status of a failed inference
// stands for, as Triton maps them.
var grpcCodeOf = map[int]codes.Code{
	http.StatusBadRequest: codes.InvalidArgument, http.StatusNotFound: codes.NotFound,
	http.StatusTooManyRequests: codes.ResourceExhausted, http.StatusServiceUnavailable: codes.Unavailable,
	http.StatusGatewayTimeout: codes.DeadlineExceeded, http.StatusInternalServerError: codes.Internal,
}

// phaseNames lists the phases a Server-Timing value names, in order.
func phaseNames(t *testing.T, v string) []string {
	t.Helper()
	var names []string
	for metric := range strings.SplitSeq(v, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(metric), ";")
		names = append(names, name)
	}
	timing, ok := profile.ParseServerTiming(v)
	if !ok {
		t.Fatalf("Server-Timing %q names no phase", v)
	}
	var sum float64
	for _, p := range profile.ServerPhases {
		sum += timing.Get(p).Seconds()
	}
	if total := timing.Get(profile.Total).Seconds(); sum > total*1.001 { // the header rounds to nanoseconds
		t.Errorf("Server-Timing %q: the phases add up to more than the total", v)
	}
	return names
}

// requestCounts reads infer_requests_total by protocol, each series keyed
// by its labels other than the protocol.
func requestCounts(t *testing.T, s *Server) map[string]map[string]float64 {
	t.Helper()
	re := regexp.MustCompile(`^infer_requests_total\{(.*)protocol="(\w+)",?(.*)\} (\S+)$`)
	out := map[string]map[string]float64{}
	for line := range strings.SplitSeq(scrape(t, s), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[2]] == nil {
			out[m[2]] = map[string]float64{}
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[2]][m[1]+m[3]] += v
	}
	return out
}

// HTTP and gRPC are two translations of one core: the same requests sent
// through both give the same outputs, byte for byte, the same phases in
// their latency budgets, the same errors (status and code of one mapping,
// one message), and the same counts in the metrics.
func TestHTTPAndGRPCShareTheCore(t *testing.T) {
	s, hs := start(t, nil, Options{})
	c, _ := serveGRPC(t, s)
	repo := s.Repository()

	type request struct {
		name, model, version string
		inputs               []tensor.Tensor
	}
	var cases []request
	for _, model := range []string{"mlp", "multi-io", "all-types"} {
		m, err := repo.Model(model, 0)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, request{model, model, "", runner.SyntheticInputs(m.Metadata().Inputs, 2, true)})
	}
	image := cases[0].inputs
	cases = append(cases,
		request{"all types at their extremes", "all-types", "1", requests.AllTypes()},
		request{"unknown model", "nope", "", image},
		request{"version not a number", "mlp", "x", image},
		request{"version not loaded", "mlp", "9", image},
		request{"wrong shape", "mlp", "", []tensor.Tensor{tensor.New("image", []int64{1, 3}, []float32{1, 2, 3})}},
		request{"unknown input", "mlp", "", []tensor.Tensor{tensor.New("picture", []int64{1, 784}, make([]float32, 784))}},
	)
	for _, tc := range cases {
		path := tc.model
		if tc.version != "" {
			path += "/versions/" + tc.version
		}
		hr, hresp := infer(t, hs.URL, path, &protocol.InferRequest{ID: "same", Inputs: tc.inputs}, true)
		greq := requests.GRPC(tc.model, tc.inputs, true)
		greq.ModelVersion, greq.Id = tc.version, "same"
		var trailer metadata.MD
		gresp, gerr := c.ModelInfer(context.Background(), greq, grpc.Trailer(&trailer))

		if hresp == nil || gerr != nil {
			var herr protocol.Error
			if err := json.Unmarshal(hr.body, &herr); err != nil && hresp == nil {
				t.Fatalf("%s: HTTP %d with no error object: %s", tc.name, hr.status, hr.body)
			}
			st, _ := status.FromError(gerr)
			if hresp != nil || gerr == nil || grpcCodeOf[hr.status] != st.Code() || herr.Error != st.Message() {
				t.Errorf("%s: HTTP %d %q, gRPC %v %q: want one error through both", tc.name, hr.status, herr.Error, st.Code(), st.Message())
			}
			continue
		}
		if hresp.ModelName != gresp.ModelName || hresp.ModelVersion != gresp.ModelVersion || hresp.ID != gresp.Id {
			t.Errorf("%s: HTTP answered %s %s %q, gRPC %s %s %q", tc.name, hresp.ModelName, hresp.ModelVersion, hresp.ID, gresp.ModelName, gresp.ModelVersion, gresp.Id)
		}
		if len(hresp.Outputs) != len(gresp.Outputs) || len(gresp.Outputs) == 0 {
			t.Fatalf("%s: %d outputs over HTTP, %d over gRPC", tc.name, len(hresp.Outputs), len(gresp.Outputs))
		}
		for i, h := range hresp.Outputs {
			g := gresp.Outputs[i]
			if h.Name != g.Name || h.DataType.String() != g.Datatype || !slices.Equal(h.Shape, g.Shape) || !bytes.Equal(h.Data, gresp.RawOutputContents[i]) {
				t.Errorf("%s: output %d: HTTP %s %s %v (%d bytes), gRPC %s %s %v (%d bytes)", tc.name, i,
					h.Name, h.DataType, h.Shape, len(h.Data), g.Name, g.Datatype, g.Shape, len(gresp.RawOutputContents[i]))
			}
		}
		hp := phaseNames(t, hr.header.Get("Server-Timing"))
		gp := phaseNames(t, strings.Join(trailer.Get(TrailerServerTiming), ","))
		if !slices.Equal(hp, gp) {
			t.Errorf("%s: phases %v over HTTP, %v over gRPC", tc.name, hp, gp)
		}
		if hb, gb := hr.header.Get(BatchSizeHeader), trailer.Get(TrailerBatchSize); len(gb) != 1 || hb != gb[0] {
			t.Errorf("%s: batch size %q over HTTP, %q over gRPC", tc.name, hb, gb)
		}
	}

	counts := requestCounts(t, s)
	if len(counts["http"]) < 3 || !maps.Equal(counts["http"], counts["grpc"]) {
		t.Errorf("requests counted by outcome:\nHTTP %v\ngRPC %v\nwant the same series and counts", counts["http"], counts["grpc"])
	}
}
