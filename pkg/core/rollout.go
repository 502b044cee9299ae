package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/window"
)

// The server is the rollout engine's Source: it reads its own registry,
// repository and shadow comparisons, and applies traffic policies.
var _ deploy.Source = (*Core)(nil)

// Metrics returns a version's cumulative request counts (every protocol;
// anything but success an error, except requests their clients gave up on)
// and its total-latency histogram.
func (s *Core) Metrics(model string, version int64) (deploy.VersionMetrics, error) {
	families, err := s.metrics.registry.Gather()
	if err != nil {
		return deploy.VersionMetrics{}, err
	}
	v := strconv.FormatInt(version, 10)
	out := deploy.VersionMetrics{Boot: s.boot}
	for _, f := range families {
		switch f.GetName() {
		case "infer_requests_total":
			for _, m := range f.GetMetric() {
				l := labelMap(m.GetLabel())
				if l["model"] != model || l["version"] != v || l["outcome"] == "canceled" {
					continue
				}
				out.Requests += m.GetCounter().GetValue()
				if l["outcome"] != "success" {
					out.Errors += m.GetCounter().GetValue()
				}
			}
		case metricTotal:
			for _, m := range f.GetMetric() {
				l := labelMap(m.GetLabel())
				if l["model"] == model && l["version"] == v {
					out.Latency = window.FromProto(m.GetHistogram())
				}
			}
		}
	}
	return out, nil
}

func labelMap[L interface {
	GetName() string
	GetValue() string
}](labels []L) map[string]string {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		m[l.GetName()] = l.GetValue()
	}
	return m
}

// Drift returns the shadow comparisons of model against version so far.
func (s *Core) Drift(model string, version int64) deploy.DriftMetrics {
	sum, ok := s.ShadowSummary(model)
	if !ok || sum.Version != version {
		return deploy.DriftMetrics{}
	}
	return deploy.DriftMetrics{
		Compared: sum.Shadow.Compared, ShadowSumAbs: sum.Shadow.MeanAbsDiff * float64(sum.Shadow.Compared),
		NoiseCompared: sum.Noise.Compared, NoiseSumAbs: sum.Noise.MeanAbsDiff * float64(sum.Noise.Compared),
	}
}

// Digest returns a loaded version's content digest (runner.Repository.Digest).
func (s *Core) Digest(model string, version int64) (string, error) {
	return s.repo.Digest(model, version)
}

// VersionReady reports whether a version is loaded and ready.
func (s *Core) VersionReady(model string, version int64) bool {
	_, err := s.repo.Model(model, version)
	return err == nil
}

// smokeRequests is how many generated requests verify a blue-green
// candidate before traffic switches to it.
const smokeRequests = 5

// Smoke sends a version generated requests of its own, in process, and
// fails unless each is answered.
func (s *Core) Smoke(model string, version int64) error {
	m, err := s.repo.Model(model, version)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(uint64(version), 7))
	for i := range smokeRequests {
		var inputs []tensor.Tensor
		for _, in := range m.Metadata().Inputs {
			shape := make([]int64, len(in.Shape))
			for j, d := range in.Shape {
				shape[j] = max(d, 1)
			}
			inputs = append(inputs, tensor.Random(in.Name, in.DataType, shape, r))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := m.Infer(ctx, &runner.Request{ID: fmt.Sprintf("smoke-%d", i), Inputs: inputs})
		cancel()
		if err != nil {
			return fmt.Errorf("smoke request %d: %w", i, err)
		}
	}
	return nil
}

// newBoot returns a server's start identity: its start time and a random
// number, so that two servers (a restart, or two in one process) never
// share one and the rollout engine never subtracts one's counters from
// another's.
func newBoot() string {
	return fmt.Sprintf("%x-%08x", time.Now().UnixNano(), rand.Uint32())
}
