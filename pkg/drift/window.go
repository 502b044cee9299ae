package drift

import (
	"math"
	"strconv"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/infer-serving/infer/pkg/tensor"
)

// Roles of a tensor.
const (
	Input  = "input"
	Output = "output"
)

// Kinds of a feature.
const (
	Continuous  = "continuous"
	Categorical = "categorical"
)

// Names of the features that summarise a tensor rather than follow one of
// its positions.
const (
	FeatureNorm   = "l2_norm" // a row's Euclidean norm
	FeatureMean   = "mean"    // a row's mean
	FeatureArgmax = "argmax"  // the index of a row's largest value (a classifier's class)
	FeatureValues = "values"  // every element, pooled (token ids, strings)
	FeatureLength = "length"  // a BYTES element's length, in bytes
)

// OtherCategory counts the values of a categorical feature past its first
// MaxCategories distinct ones.
const OtherCategory = "_other"

// Sketch accuracy: quantiles within 1% of the true value (relative), in at
// most 512 bins per sign; past that the smallest magnitudes collapse into
// one bin (DDSketch, Masson et al., VLDB 2019).
const (
	sketchAccuracy = 0.01
	sketchBins     = 512
)

// Layout says how a tensor's elements become features.
type Layout struct {
	// Batched: the first dimension counts rows (a batched model's tensors);
	// else the whole tensor is one row.
	Batched bool
	// MaxFeatures is the most positions of a row followed one by one;
	// wider rows are summarised (norm and mean; pooled values).
	MaxFeatures int
	// MaxCategories bounds the distinct values counted per categorical
	// feature; more fall under OtherCategory.
	MaxCategories int
}

// window accumulates the statistics of the requests sampled over one span
// of time. It is owned by the monitor's worker; readers take it under the
// monitor's lock.
type window struct {
	start, end time.Time
	requests   int64
	tensors    []*tensorStats
	byKey      map[string]*tensorStats // role + "/" + name
}

func newWindow(start time.Time) *window {
	return &window{start: start, byKey: map[string]*tensorStats{}}
}

type tensorStats struct {
	name, role string
	dataType   tensor.DataType
	rows       int64
	nan, inf   int64
	features   []*featureStats
	byName     map[string]*featureStats
	// positions holds the per-position means of rows too wide to follow
	// position by position (nil for narrow or non-float tensors).
	positions *positionStats
}

type featureStats struct {
	name, kind string
	count      int64
	sum, sumSq float64
	min, max   float64
	sketch     *ddsketch.DDSketch
	categories map[string]int64
}

func (w *window) tensor(name, role string, dt tensor.DataType) *tensorStats {
	key := role + "/" + name
	t := w.byKey[key]
	if t == nil {
		t = &tensorStats{name: name, role: role, dataType: dt, byName: map[string]*featureStats{}}
		w.byKey[key] = t
		w.tensors = append(w.tensors, t)
	}
	return t
}

func (t *tensorStats) feature(name, kind string) *featureStats {
	f := t.byName[name]
	if f == nil {
		f = &featureStats{name: name, kind: kind, min: math.Inf(1), max: math.Inf(-1)}
		if kind == Continuous {
			f.sketch, _ = ddsketch.LogCollapsingLowestDenseDDSketch(sketchAccuracy, sketchBins) // the constants are valid
		} else {
			f.categories = map[string]int64{}
		}
		t.byName[name] = f
		t.features = append(t.features, f)
	}
	return f
}

func (f *featureStats) add(v float64) {
	f.count++
	f.sum += v
	f.sumSq += v * v
	f.min, f.max = min(f.min, v), max(f.max, v)
	_ = f.sketch.Add(v) // finite values only reach here; Add fails on none
}

func (f *featureStats) addCategory(key string, limit int) {
	f.count++
	if _, ok := f.categories[key]; ok || len(f.categories) < limit {
		f.categories[key]++
		return
	}
	f.categories[OtherCategory]++
}

// observe adds one tensor's rows to the window.
func (w *window) observe(t tensor.Tensor, role string, l Layout) {
	n := int(tensor.Elements(t.Shape))
	if t.DataType != tensor.Bytes && n*t.DataType.Size() != len(t.Data) {
		return // not what its shape says: nothing to learn from it
	}
	rows := 1
	if l.Batched && len(t.Shape) > 0 {
		rows = int(t.Shape[0])
	}
	if rows <= 0 || n%rows != 0 {
		return
	}
	cols := n / rows
	s := w.tensor(t.Name, role, t.DataType)
	s.rows += int64(rows)
	switch t.DataType {
	case tensor.FP16, tensor.BF16, tensor.FP32, tensor.FP64:
		s.observeFloats(t, rows, cols, l)
	case tensor.Bytes:
		s.observeBytes(t, l)
	default:
		s.observeCategories(t, rows, cols, l)
	}
}

func (s *tensorStats) observeFloats(t tensor.Tensor, rows, cols int, l Layout) {
	perPosition := cols <= l.MaxFeatures
	argmax := s.role == Output && len(t.Shape) == 2 && cols >= 2 && cols <= l.MaxCategories
	var pos []*featureStats
	if perPosition {
		pos = make([]*featureStats, cols)
		for j := range pos {
			pos[j] = s.feature(strconv.Itoa(j), Continuous)
		}
	}
	var norm, mean, classes *featureStats
	var means *positionStats
	if !perPosition {
		norm, mean = s.feature(FeatureNorm, Continuous), s.feature(FeatureMean, Continuous)
		if s.positions == nil {
			s.positions = newPositionStats(cols)
		}
		if s.positions.width == cols { // rows of another width are left out
			means = s.positions
		}
	}
	if argmax {
		classes = s.feature(FeatureArgmax, Categorical)
	}
	for r := range rows {
		var sumSq, sum float64
		best, bestAt, finite := math.Inf(-1), -1, 0
		for j := range cols {
			v := t.Float64At(r*cols + j)
			switch {
			case math.IsNaN(v):
				s.nan++
				continue
			case math.IsInf(v, 0):
				s.inf++
				continue
			}
			finite++
			if pos != nil {
				pos[j].add(v)
			} else if means != nil {
				means.add(j, v)
			}
			sum += v
			sumSq += v * v
			if v > best {
				best, bestAt = v, j
			}
		}
		if norm != nil && finite > 0 {
			norm.add(math.Sqrt(sumSq))
			mean.add(sum / float64(finite))
		}
		if classes != nil && bestAt >= 0 {
			classes.addCategory(strconv.Itoa(bestAt), l.MaxCategories)
		}
	}
}

func (s *tensorStats) observeCategories(t tensor.Tensor, rows, cols int, l Layout) {
	var pooled *featureStats
	var pos []*featureStats
	if cols <= l.MaxFeatures {
		pos = make([]*featureStats, cols)
		for j := range pos {
			pos[j] = s.feature(strconv.Itoa(j), Categorical)
		}
	} else {
		pooled = s.feature(FeatureValues, Categorical)
	}
	var buf []byte
	for r := range rows {
		for j := range cols {
			buf = strconv.AppendFloat(buf[:0], t.Float64At(r*cols+j), 'g', -1, 64)
			f := pooled
			if pos != nil {
				f = pos[j]
			}
			f.addCategory(string(buf), l.MaxCategories)
		}
	}
}

// maxCategoryBytes bounds a BYTES value kept as a category key.
const maxCategoryBytes = 64

func (s *tensorStats) observeBytes(t tensor.Tensor, l Layout) {
	values, length := s.feature(FeatureValues, Categorical), s.feature(FeatureLength, Continuous)
	data := t.Data
	for len(data) >= 4 {
		n := int(uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24)
		data = data[4:]
		if n > len(data) {
			return
		}
		length.add(float64(n))
		values.addCategory(string(data[:min(n, maxCategoryBytes)]), l.MaxCategories)
		data = data[n:]
	}
}

// merge adds o's statistics to w.
func (w *window) merge(o *window, l Layout) {
	if w.start.IsZero() || o.start.Before(w.start) {
		w.start = o.start
	}
	if o.end.After(w.end) {
		w.end = o.end
	}
	w.requests += o.requests
	for _, ot := range o.tensors {
		t := w.tensor(ot.name, ot.role, ot.dataType)
		t.rows += ot.rows
		t.nan += ot.nan
		t.inf += ot.inf
		if ot.positions != nil {
			if t.positions == nil {
				t.positions = newPositionStats(ot.positions.width)
			}
			t.positions.merge(ot.positions)
		}
		for _, of := range ot.features {
			f := t.feature(of.name, of.kind)
			f.count += of.count
			f.sum += of.sum
			f.sumSq += of.sumSq
			f.min, f.max = min(f.min, of.min), max(f.max, of.max)
			if f.sketch != nil {
				_ = f.sketch.MergeWith(of.sketch) // sketches of one mapping always merge
			}
			for k, c := range of.categories {
				if _, ok := f.categories[k]; ok || len(f.categories) < l.MaxCategories {
					f.categories[k] += c
				} else {
					f.categories[OtherCategory] += c
				}
			}
		}
	}
}
