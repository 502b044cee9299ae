package drift

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"time"
)

// QuantilePoints is the number of quantiles a continuous feature's summary
// holds: at 0, 1/100, 2/100, ..., 1.
const QuantilePoints = 101

// Summary is the statistics of the requests sampled over a span of time:
// a closed window, several merged, or a baseline file (baseline.json),
// which is a Summary written as JSON.
type Summary struct {
	Model   string    `json:"model,omitempty"`
	Version int64     `json:"version,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Requests is the number of sampled requests summarised.
	Requests int64           `json:"requests"`
	Tensors  []TensorSummary `json:"tensors"`
}

// TensorSummary is one input's or output's statistics.
type TensorSummary struct {
	Name     string `json:"name"`
	Role     string `json:"role"` // Input or Output
	DataType string `json:"datatype"`
	Rows     int64  `json:"rows"`
	// NaN and Inf count the elements that were not finite; they are left
	// out of every feature's statistics.
	NaN      int64            `json:"nan"`
	Inf      int64            `json:"inf"`
	Features []FeatureSummary `json:"features"`
	// Positions are the per-position means of rows wider than
	// Layout.MaxFeatures, for floating-point tensors.
	Positions *PositionMeans `json:"positions,omitempty"`
}

// FeatureSummary is one feature's statistics: a position of the tensor's
// rows ("0", "1", ...) or a summary of them (FeatureNorm, FeatureMean,
// FeatureArgmax, FeatureValues, FeatureLength).
type FeatureSummary struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // Continuous or Categorical
	Count int64  `json:"count"`
	// Continuous: moments, range, and QuantilePoints quantiles from a
	// DDSketch (each within 1% of the true value).
	Mean      float64   `json:"mean,omitempty"`
	Std       float64   `json:"std,omitempty"`
	Min       float64   `json:"min,omitempty"`
	Max       float64   `json:"max,omitempty"`
	Quantiles []float64 `json:"quantiles,omitempty"`
	// Categorical: the count of each value (OtherCategory for values past
	// the cap).
	Categories map[string]int64 `json:"categories,omitempty"`
}

// Quantile returns the feature's q-quantile (0 ≤ q ≤ 1), interpolated
// between the summary's points; NaN when it has none.
func (f FeatureSummary) Quantile(q float64) float64 {
	if len(f.Quantiles) == 0 {
		return math.NaN()
	}
	x := q * float64(len(f.Quantiles)-1)
	i := int(x)
	if i >= len(f.Quantiles)-1 {
		return f.Quantiles[len(f.Quantiles)-1]
	}
	return f.Quantiles[i] + (x-float64(i))*(f.Quantiles[i+1]-f.Quantiles[i])
}

// cdf returns the share of the feature's values at or below x, reading
// its quantiles as a piecewise-linear distribution function.
func (f FeatureSummary) cdf(x float64) float64 {
	q := f.Quantiles
	n := len(q) - 1
	switch {
	case n < 1:
		return 0
	case x < q[0]:
		return 0
	case x >= q[n]:
		return 1
	}
	i := sort.Search(len(q), func(i int) bool { return q[i] > x }) - 1 // q[i] ≤ x < q[i+1]
	return (float64(i) + (x-q[i])/(q[i+1]-q[i])) / float64(n)
}

// Tensor returns the summary of the tensor of that role and name.
func (s Summary) Tensor(role, name string) (TensorSummary, bool) {
	for _, t := range s.Tensors {
		if t.Role == role && t.Name == name {
			return t, true
		}
	}
	return TensorSummary{}, false
}

// Feature returns the tensor's feature of that name.
func (t TensorSummary) Feature(name string) (FeatureSummary, bool) {
	for _, f := range t.Features {
		if f.Name == name {
			return f, true
		}
	}
	return FeatureSummary{}, false
}

// summary returns the window's statistics.
func (w *window) summary() Summary {
	s := Summary{Start: w.start, End: w.end, Requests: w.requests, Tensors: make([]TensorSummary, 0, len(w.tensors))}
	probs := make([]float64, QuantilePoints)
	for i := range probs {
		probs[i] = float64(i) / (QuantilePoints - 1)
	}
	for _, t := range w.tensors {
		ts := TensorSummary{Name: t.name, Role: t.role, DataType: t.dataType.String(), Rows: t.rows, NaN: t.nan, Inf: t.inf}
		if t.positions != nil {
			ts.Positions = t.positions.summary()
		}
		for _, f := range t.features {
			fs := FeatureSummary{Name: f.name, Kind: f.kind, Count: f.count}
			if f.kind == Categorical {
				fs.Categories = maps.Clone(f.categories)
			} else if f.count > 0 {
				n := float64(f.count)
				fs.Mean = f.sum / n
				fs.Std = math.Sqrt(max(f.sumSq/n-fs.Mean*fs.Mean, 0))
				fs.Min, fs.Max = f.min, f.max
				// The quantiles stay the sketch's bins' values, even at the
				// ends (Min and Max are exact): two summaries then put their
				// steps at the same values, and their distribution functions
				// compare bin for bin.
				if q, err := f.sketch.GetValuesAtQuantiles(probs); err == nil {
					fs.Quantiles = q
				}
			}
			ts.Features = append(ts.Features, fs)
		}
		s.Tensors = append(s.Tensors, ts)
	}
	return s
}

// ReadSummary reads a baseline (or any Summary) from a JSON file.
func ReadSummary(path string) (Summary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Summary{}, err
	}
	return ParseSummary(data)
}

// ParseSummary decodes a Summary from JSON and checks it: known roles and
// kinds, QuantilePoints ascending quantiles on each continuous feature.
// Its errors quote at most 64 characters of a name, role or kind.
func ParseSummary(data []byte) (Summary, error) {
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return Summary{}, fmt.Errorf("baseline: %w", err)
	}
	for _, t := range s.Tensors {
		if t.Role != Input && t.Role != Output {
			return Summary{}, fmt.Errorf("baseline: tensor %.64q: role %.64q, want %q or %q", t.Name, t.Role, Input, Output)
		}
		if t.Positions != nil && !t.Positions.valid() {
			return Summary{}, fmt.Errorf("baseline: tensor %.64q: positions: want width > 0 and min(width, %d) counts, means and stds", t.Name, MaxPositionGroups)
		}
		for _, f := range t.Features {
			switch {
			case f.Kind != Continuous && f.Kind != Categorical:
				return Summary{}, fmt.Errorf("baseline: tensor %.64q feature %.64q: kind %.64q, want %q or %q", t.Name, f.Name, f.Kind, Continuous, Categorical)
			case f.Kind == Continuous && f.Count > 0 && len(f.Quantiles) != QuantilePoints:
				return Summary{}, fmt.Errorf("baseline: tensor %.64q feature %.64q: %d quantiles, want %d", t.Name, f.Name, len(f.Quantiles), QuantilePoints)
			case f.Kind == Continuous && !slices.IsSorted(f.Quantiles):
				return Summary{}, fmt.Errorf("baseline: tensor %.64q feature %.64q: quantiles not ascending", t.Name, f.Name)
			}
		}
	}
	return s, nil
}

// WriteFile writes s as indented JSON to path, atomically (a temporary
// file, synced, then renamed), so a reader never sees half a baseline.
func (s Summary) WriteFile(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(append(data, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
