package deploy

import (
	"fmt"
	"time"
)

// OutputDrift compares the outputs of two versions over one span of the
// same traffic: the candidate's distribution against the stable one's,
// feature by feature (each output position, or its norm and mean, and a
// classifier's argmax class), as their quality monitors summarised them.
type OutputDrift struct {
	// PSI is the largest population stability index of any output
	// feature; Tensor and Feature name it.
	PSI     float64 `json:"psi"`
	Tensor  string  `json:"tensor"`
	Feature string  `json:"feature"`
	// StableSamples and CandidateSamples are the sampled requests each
	// summary holds.
	StableSamples    int64 `json:"stable_samples"`
	CandidateSamples int64 `json:"candidate_samples"`
}

// QualitySource is what a Source offers when its versions' outputs are
// monitored: a rollout whose analysis sets MaxOutputDrift needs it.
type QualitySource interface {
	// OutputDrift compares the outputs the two versions answered since
	// the given time (as finely as the monitors' windows).
	OutputDrift(model string, stable, candidate int64, since time.Time) (OutputDrift, error)
}

// judgeOutputs fails a passing analysis whose candidate's outputs moved
// from the stable version's by more than MaxOutputDrift (PSI), and adds
// the figures. Fewer than MinRequests samples on either side leave the
// verdict as it was: no data is no evidence either way.
func (a Analysis) judgeOutputs(res Result, d OutputDrift) Result {
	res.Figures["output_psi"] = d.PSI
	res.Figures["output_drift_stable_samples"] = float64(d.StableSamples)
	res.Figures["output_drift_candidate_samples"] = float64(d.CandidateSamples)
	if res.Verdict != Pass || d.StableSamples < a.MinRequests || d.CandidateSamples < a.MinRequests {
		return res
	}
	if d.PSI > a.MaxOutputDrift {
		return Result{Fail, fmt.Sprintf("output drift: PSI %.3g of %s/%s against the stable version's outputs exceeds %.3g", d.PSI, d.Tensor, d.Feature, a.MaxOutputDrift), res.Figures}
	}
	return res
}
