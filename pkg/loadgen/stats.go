package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/profile"
)

// ServerStats are a model's cumulative statistics as Triton's statistics
// extension reports them: successful requests, and the nanoseconds they
// spent queued and in compute input, infer and output.
type ServerStats struct {
	Count                       int64
	Queue, Input, Infer, Output time.Duration
}

// Minus returns the statistics accumulated since before.
func (s ServerStats) Minus(before ServerStats) ServerStats {
	return ServerStats{Count: s.Count - before.Count, Queue: s.Queue - before.Queue, Input: s.Input - before.Input,
		Infer: s.Infer - before.Infer, Output: s.Output - before.Output}
}

// StatsReader reads a model's cumulative statistics from its server.
type StatsReader func(ctx context.Context) (ServerStats, error)

// httpStats reads GET {base}/v2/models/{model}[/versions/{v}]/stats.
func httpStats(client *http.Client, base, model, version string) StatsReader {
	path := base + "/v2/models/" + url.PathEscape(model)
	if version != "" {
		path += "/versions/" + url.PathEscape(version)
	}
	return func(ctx context.Context) (ServerStats, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", path+"/stats", nil)
		if err != nil {
			return ServerStats{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return ServerStats{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return ServerStats{}, fmt.Errorf("stats: status %d", resp.StatusCode)
		}
		type d struct{ Count, Ns int64 }
		var body struct {
			ModelStats []struct {
				InferenceStats map[string]d `json:"inference_stats"`
			} `json:"model_stats"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return ServerStats{}, fmt.Errorf("stats: %w", err)
		}
		var s ServerStats
		for _, m := range body.ModelStats { // every version, when none was named
			is := m.InferenceStats
			s.Count += is["success"].Count
			s.Queue += time.Duration(is["queue"].Ns)
			s.Input += time.Duration(is["compute_input"].Ns)
			s.Infer += time.Duration(is["compute_infer"].Ns)
			s.Output += time.Duration(is["compute_output"].Ns)
		}
		return s, nil
	}
}

// grpcStats reads the ModelStatistics RPC.
func grpcStats(c inferencepb.GRPCInferenceServiceClient, model, version string) StatsReader {
	return func(ctx context.Context) (ServerStats, error) {
		resp, err := c.ModelStatistics(ctx, &inferencepb.ModelStatisticsRequest{Name: model, Version: version})
		if err != nil {
			return ServerStats{}, err
		}
		var s ServerStats
		for _, m := range resp.GetModelStats() {
			is := m.GetInferenceStats()
			s.Count += int64(is.GetSuccess().GetCount())
			s.Queue += time.Duration(is.GetQueue().GetNs())
			s.Input += time.Duration(is.GetComputeInput().GetNs())
			s.Infer += time.Duration(is.GetComputeInfer().GetNs())
			s.Output += time.Duration(is.GetComputeOutput().GetNs())
		}
		return s, nil
	}
}

// ApplyServerStats fills the server's phases of a report whose responses
// carried none, from the statistics the server accumulated during the run:
// each phase's mean per request (its percentiles are unknown and left 0),
// and network as the remainder of the mean total. Compute input counts as
// preprocess and compute output as postprocess.
func (r *Report) ApplyServerStats(d ServerStats) bool {
	if d.Count <= 0 || r.OK == 0 {
		return false
	}
	perReq := func(v time.Duration) float64 { return float64(v) / float64(d.Count) / float64(time.Millisecond) }
	means := map[string]float64{
		profile.Queue.String(): perReq(d.Queue), profile.Preprocess.String(): perReq(d.Input),
		profile.Infer.String(): perReq(d.Infer), profile.Postprocess.String(): perReq(d.Output),
	}
	total := r.Latency.Mean
	var attributed float64
	for i, p := range r.Phases {
		if m, ok := means[p.Phase]; ok {
			r.Phases[i] = PhaseReport{Phase: p.Phase, Mean: m, Source: SourceStats}
		}
		if p.Phase != profile.Network.String() {
			attributed += r.Phases[i].Mean
		}
	}
	for i, p := range r.Phases {
		if p.Phase == profile.Network.String() {
			r.Phases[i] = PhaseReport{Phase: p.Phase, Mean: max(total-attributed, 0), Source: SourceRemainder}
		}
	}
	for i := range r.Phases {
		if total > 0 {
			r.Phases[i].Share = r.Phases[i].Mean / total
		}
	}
	return true
}
