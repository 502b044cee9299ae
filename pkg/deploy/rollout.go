package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/window"
)

// Strategies.
const (
	Canary    = "canary"     // shift traffic in steps, analysing each
	BlueGreen = "blue-green" // verify the standby, switch all traffic at once
	Mirror    = "shadow"     // mirror a fraction, analyse drift, never serve
	AB        = "ab"         // a fixed sticky split, analysed until promoted or aborted
)

// Phases of a rollout.
const (
	Progressing = "progressing"
	Paused      = "paused" // inconclusive too long, or an A/B test: waits for promote or abort
	Promoted    = "promoted"
	RolledBack  = "rolled-back"
	Aborted     = "aborted"
	Completed   = "completed" // a shadow rollout that ran its course
)

// Events of a rollout's history besides its phases and verdicts.
const (
	Resumed          = "resumed"           // the server restarted; the step goes on
	WindowRestarted  = "window-restarted"  // the step's figures were not comparable; judged afresh
	CandidateChanged = "candidate-changed" // the candidate's files changed during the rollout
)

// Duration is a time.Duration that reads and writes JSON as "30s".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: want one such as \"30s\" or \"2m\"", protocol.Clip(s)) // time's error quotes s whole
	}
	*d = Duration(v)
	return nil
}

// Spec is what a rollout is asked to do.
type Spec struct {
	Model     string `json:"model"`
	Stable    int64  `json:"stable"`
	Candidate int64  `json:"candidate"`
	Strategy  string `json:"strategy"`
	// Steps are the candidate's percentages of traffic, one analysis each
	// (canary: 5, 25, 50, 100 by default; A/B: its one split).
	Steps []float64 `json:"steps"`
	// Interval is how long each step runs before it is analysed.
	Interval Duration `json:"interval"`
	// Sticky is the A/B assignment key ("id" or "header:Name").
	Sticky string `json:"sticky,omitempty"`
	// ShadowFraction is the share of requests mirrored by a shadow rollout.
	ShadowFraction float64 `json:"shadow_fraction,omitempty"`
	// OnCandidateChange is what a change of the candidate's files (its
	// content digest) during the rollout does: OnChangeAbort (the
	// default) rolls back to the stable version; OnChangeRestart starts
	// again from the first step, judging the new revision.
	OnCandidateChange string   `json:"on_candidate_change,omitempty"`
	Analysis          Analysis `json:"analysis"`
}

// What a rollout does when its candidate's files change (see
// Spec.OnCandidateChange).
const (
	OnChangeAbort   = "abort"
	OnChangeRestart = "restart"
)

// Analysis says when a step passes. A step with fewer than MinRequests
// candidate requests is inconclusive: no promotion on no data.
type Analysis struct {
	MinRequests    int64   `json:"min_requests"`
	MinSuccessRate float64 `json:"min_success_rate"`
	// MaxP99Ratio bounds the candidate's latency against the stable
	// version's over the same step (0: not checked), judged beyond noise
	// as judgeLatency says: a Mann-Whitney U test and bounds on both p99s.
	MaxP99Ratio float64 `json:"max_p99_ratio"`
	// Confidence is how sure a latency verdict must be, in (0.5, 1): each
	// latency test calls noise a regression at most 1−Confidence of the
	// time, and a p99 needs MinLatencyRequests requests to be judged at
	// all. 0.95 by default.
	Confidence float64 `json:"confidence"`
	// MaxDrift bounds the shadow's mean max-abs-difference above the noise
	// floor (0: not checked).
	MaxDrift float64 `json:"max_drift"`
	// MaxOutputDrift bounds how far the candidate's output distribution
	// may move from the stable version's over the same step: the largest
	// PSI of any output feature, 0.25 being the usual line of a
	// significant shift (0: not checked). Both versions need a quality
	// monitor (monitor.sample in config.yaml).
	MaxOutputDrift float64 `json:"max_output_drift,omitempty"`
	// FailureLimit failed analyses roll back; InconclusiveLimit
	// inconclusive ones in a row pause the rollout for a person to decide.
	FailureLimit      int `json:"failure_limit"`
	InconclusiveLimit int `json:"inconclusive_limit"`
}

// WithDefaults fills what a spec leaves out.
func (s Spec) WithDefaults() Spec {
	if s.Strategy == "" {
		s.Strategy = Canary
	}
	if len(s.Steps) == 0 {
		switch s.Strategy {
		case Canary:
			s.Steps = []float64{5, 25, 50, 100}
		case AB:
			s.Steps = []float64{50}
		default:
			s.Steps = []float64{100}
		}
	}
	if s.Interval == 0 {
		s.Interval = Duration(30 * time.Second)
	}
	if s.OnCandidateChange == "" {
		s.OnCandidateChange = OnChangeAbort
	}
	a := &s.Analysis
	if a.MinRequests == 0 {
		a.MinRequests = 20
	}
	if a.MinSuccessRate == 0 {
		a.MinSuccessRate = 0.99
	}
	if a.FailureLimit == 0 {
		a.FailureLimit = 1
	}
	if a.InconclusiveLimit == 0 {
		a.InconclusiveLimit = 3
	}
	if a.Confidence == 0 {
		a.Confidence = DefaultConfidence
	}
	return s
}

// Validate checks a defaulted spec, naming the field at fault.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Model == "" {
		bad("model: empty")
	}
	if s.Stable < 1 || s.Candidate < 1 || s.Stable == s.Candidate {
		bad("stable %d and candidate %d: want two different versions", s.Stable, s.Candidate)
	}
	if !slices.Contains([]string{Canary, BlueGreen, Mirror, AB}, s.Strategy) {
		bad("strategy %s: want canary, blue-green, shadow or ab", protocol.Clip(s.Strategy))
	}
	if len(s.Steps) == 0 {
		bad("steps: none")
	}
	for i, p := range s.Steps {
		if !(p > 0 && p <= 100) || i > 0 && p <= s.Steps[i-1] {
			bad("steps %v: want rising percentages in (0, 100]", s.Steps)
			break
		}
	}
	if time.Duration(s.Interval) < 10*time.Millisecond {
		bad("interval %v: too short to measure anything", time.Duration(s.Interval))
	}
	if s.OnCandidateChange != OnChangeAbort && s.OnCandidateChange != OnChangeRestart {
		bad("on_candidate_change %q: want abort or restart", s.OnCandidateChange)
	}
	if s.Strategy == Mirror && !(s.ShadowFraction > 0 && s.ShadowFraction <= 1) {
		bad("shadow_fraction %v: want more than 0, at most 1", s.ShadowFraction)
	}
	a := s.Analysis
	if !(a.Confidence > 0.5 && a.Confidence < 1) {
		bad("analysis.confidence %v: want more than 0.5 and less than 1, such as 0.95", a.Confidence)
	}
	if a.MinSuccessRate < 0 || a.MinSuccessRate > 1 || a.MaxP99Ratio < 0 || a.MaxDrift < 0 || a.MaxOutputDrift < 0 || a.MinRequests < 1 || a.FailureLimit < 1 || a.InconclusiveLimit < 1 {
		bad("analysis %+v: want rates in [0,1], non-negative ceilings and limits of at least 1", a)
	}
	return errors.Join(errs...)
}

// Policy returns the traffic policy of step i.
func (s Spec) Policy(step int) Policy {
	p := s.Steps[min(step, len(s.Steps)-1)]
	switch s.Strategy {
	case Mirror:
		return Policy{Weights: map[int64]float64{s.Stable: 1}, Shadow: &Shadow{Version: s.Candidate, Fraction: s.ShadowFraction}}
	case BlueGreen:
		return Weighted(s.Candidate)
	}
	if p >= 100 {
		return Weighted(s.Candidate)
	}
	return Policy{Weights: map[int64]float64{s.Stable: 100 - p, s.Candidate: p}, Sticky: s.Sticky}
}

// Describe says what step i does with the traffic, for the history: a
// shadow rollout mirrors and never serves, so it never says "at 100%".
func (s Spec) Describe(step int) string {
	if s.Strategy == Mirror {
		return fmt.Sprintf("version %d mirrors %g%% of requests, its answers compared and never returned; version %d serves them all",
			s.Candidate, 100*s.ShadowFraction, s.Stable)
	}
	return fmt.Sprintf("version %d at %g%%", s.Candidate, s.Steps[min(step, len(s.Steps)-1)])
}

// VersionMetrics are one version's cumulative figures, as the server
// exports them.
type VersionMetrics struct {
	Requests float64          `json:"requests"`
	Errors   float64          `json:"errors"`
	Latency  window.Histogram `json:"latency"`
	// Boot identifies the process whose counters these are: figures of
	// two processes are never subtracted (a restart starts the counters
	// again from zero), so an analysis window spanning a restart is
	// restarted instead of judged.
	Boot string `json:"boot,omitempty"`
}

// DriftMetrics are a shadow's cumulative comparisons: how many, and the
// sums of their max-abs-differences, against the shadow and the noise
// floor (the primary against itself).
type DriftMetrics struct {
	Compared      int64   `json:"compared"`
	ShadowSumAbs  float64 `json:"shadow_sum_abs"`
	NoiseCompared int64   `json:"noise_compared"`
	NoiseSumAbs   float64 `json:"noise_sum_abs"`
}

// since returns the comparisons made after start, as means.
func (d DriftMetrics) since(start DriftMetrics) (compared int64, shadowMean, noiseMean float64) {
	if d.Compared < start.Compared { // the server restarted
		start = DriftMetrics{}
	}
	compared = d.Compared - start.Compared
	if compared > 0 {
		shadowMean = (d.ShadowSumAbs - start.ShadowSumAbs) / float64(compared)
	}
	if n := d.NoiseCompared - start.NoiseCompared; n > 0 {
		noiseMean = (d.NoiseSumAbs - start.NoiseSumAbs) / float64(n)
	}
	return compared, shadowMean, noiseMean
}

// Verdicts of an analysis.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
)

// Result is one analysis: the verdict, why, and the figures behind it.
type Result struct {
	Verdict string             `json:"verdict"`
	Reason  string             `json:"reason"`
	Figures map[string]float64 `json:"figures"`
}

// Analyse judges one step from the two versions' metrics at its start and
// end (and the shadow's comparisons, when mirroring).
func (a Analysis) Analyse(stableStart, stableEnd, candStart, candEnd VersionMetrics, driftStart, driftEnd *DriftMetrics) Result {
	req := func(start, end VersionMetrics) (float64, float64) {
		return window.CounterDelta(end.Requests, start.Requests), window.CounterDelta(end.Errors, start.Errors)
	}
	cReq, cErr := req(candStart, candEnd)
	sReq, _ := req(stableStart, stableEnd)
	fig := map[string]float64{"candidate_requests": cReq, "stable_requests": sReq}
	if driftStart != nil && driftEnd != nil {
		compared, shadowMean, noiseMean := driftEnd.since(*driftStart)
		fig["shadow_compared"] = float64(compared)
		fig["shadow_mean_abs_diff"] = shadowMean
		fig["noise_mean_abs_diff"] = noiseMean
		if a.MaxDrift > 0 && compared >= a.MinRequests && shadowMean-noiseMean > a.MaxDrift {
			return Result{Fail, fmt.Sprintf("shadow drift %.3g above the noise floor %.3g exceeds %.3g", shadowMean, noiseMean, a.MaxDrift), fig}
		}
		if cReq < float64(a.MinRequests) && compared < a.MinRequests {
			return Result{Inconclusive, fmt.Sprintf("%d comparisons, want at least %d", compared, a.MinRequests), fig}
		}
		if cReq < float64(a.MinRequests) {
			return Result{Pass, "drift within bounds", fig}
		}
	}
	if cReq < float64(a.MinRequests) {
		return Result{Inconclusive, fmt.Sprintf("%.0f candidate requests, want at least %d", cReq, a.MinRequests), fig}
	}
	success := 1 - cErr/cReq
	fig["candidate_success_rate"] = success
	if success < a.MinSuccessRate {
		return Result{Fail, fmt.Sprintf("success rate %.2f%% below %.2f%%", 100*success, 100*a.MinSuccessRate), fig}
	}
	cLat := window.Delta(candEnd.Latency, candStart.Latency)
	sLat := window.Delta(stableEnd.Latency, stableStart.Latency)
	if a.MaxP99Ratio <= 0 {
		fig["candidate_p99_ms"] = 1000 * cLat.Quantile(0.99)
		return Result{Pass, "within every bound", fig}
	}
	verdict, why := a.judgeLatency(sLat, cLat, fig)
	if verdict != Pass {
		return Result{verdict, why, fig}
	}
	return Result{Pass, "within every bound; " + why, fig}
}

// Event is one entry of a rollout's history.
type Event struct {
	Time    time.Time          `json:"time"`
	Step    int                `json:"step"`
	Percent float64            `json:"percent"`
	Kind    string             `json:"kind"` // started, step, pass, fail, inconclusive, promoted, rolled-back, aborted, paused, completed, resumed, window-restarted, candidate-changed
	Reason  string             `json:"reason,omitempty"`
	Figures map[string]float64 `json:"figures,omitempty"`
}

// State is a rollout as it stands, persisted after every change.
type State struct {
	Spec         Spec      `json:"spec"`
	Phase        string    `json:"phase"`
	Step         int       `json:"step"`
	StepStarted  time.Time `json:"step_started"`
	Failures     int       `json:"failures"`
	Inconclusive int       `json:"inconclusive"`
	// Baselines are both versions' metrics when the step started.
	StableAtStep    VersionMetrics `json:"stable_at_step"`
	CandidateAtStep VersionMetrics `json:"candidate_at_step"`
	DriftAtStep     DriftMetrics   `json:"drift_at_step"`
	// Revision counts the rollout's transitions (across the model's
	// rollouts): each one saved is one more, and the traffic policy it
	// applies carries it (Policy.Rollout), so that a restart can tell
	// whether the policy in force is the one the state calls for.
	Revision uint64 `json:"revision"`
	// CandidateDigest is the content digest of the candidate being judged
	// (its model file and configuration): a candidate whose files change
	// during the rollout is not the one the earlier steps judged.
	CandidateDigest string  `json:"candidate_digest,omitempty"`
	History         []Event `json:"history"`

	fresh int // events appended and not yet logged
}

// LastAnalysis returns the latest analysis event (pass, fail or
// inconclusive); ok is false before the first.
func (s State) LastAnalysis() (Event, bool) {
	for _, e := range slices.Backward(s.History) {
		switch e.Kind {
		case Pass, Fail, Inconclusive:
			return e, true
		}
	}
	return Event{}, false
}

// Check validates a state read from elsewhere (a server's answer, a state
// file): its spec as Validate does, a known phase, and a step within the
// spec's steps, naming what is wrong.
func (s State) Check() error {
	if err := s.Spec.Validate(); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if !slices.Contains([]string{Progressing, Paused, Promoted, RolledBack, Aborted, Completed}, s.Phase) {
		return fmt.Errorf("phase %q: not a rollout phase", s.Phase)
	}
	if s.Step < 0 || s.Step >= len(s.Spec.Steps) {
		return fmt.Errorf("step %d: the spec has steps 0 to %d", s.Step, len(s.Spec.Steps)-1)
	}
	return nil
}

// Done reports whether the rollout has ended.
func (s State) Done() bool { return s.Phase != Progressing && s.Phase != Paused }

// Percent returns the candidate's share of the traffic: the current
// step's while the rollout runs, 100 once it is promoted, 0 once it is
// rolled back or aborted, and 0 for a shadow, which only mirrors.
func (s State) Percent() float64 {
	switch {
	case s.Spec.Strategy == Mirror || s.Phase == RolledBack || s.Phase == Aborted:
		return 0
	case s.Phase == Promoted:
		return 100
	}
	return s.Spec.Steps[min(s.Step, len(s.Spec.Steps)-1)]
}

// ParsePercent reads "5%" or "5" as 5.
func ParsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(v > 0 && v <= 100) {
		return 0, fmt.Errorf("%q: want a percentage in (0, 100], such as 5%%", s)
	}
	return v, nil
}
