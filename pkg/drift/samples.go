package drift

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// Defaults of SampleOptions.
const (
	DefaultSamplesPerWindow = 100
	DefaultSampleFiles      = 48
)

// SampleOptions configure the samples kept for review.
type SampleOptions struct {
	// Dir is the folder the version's files go to; empty turns sampling
	// for review off. SampleDir gives the usual one under a state folder.
	Dir string
	// PerWindow is the reservoir's size: at most this many pairs are kept
	// from each window, each sampled request equally likely
	// (DefaultSamplesPerWindow when 0).
	PerWindow int
	// Files is how many window files are kept; older ones are deleted
	// (DefaultSampleFiles when 0).
	Files int
	// Drop names inputs left out of the files; Hash names inputs whose
	// data is replaced by the SHA-256 of its bytes (a value that can be
	// matched, not read).
	Drop, Hash []string
}

// SampleDir returns where model version's review samples are kept under
// a state folder: <state>/samples/<model>/<version>.
func SampleDir(state, model string, version int64) string {
	return filepath.Join(state, "samples", model, strconv.FormatInt(version, 10))
}

// Record is one sampled request and its answer, a line of a samples file.
type Record struct {
	Time    time.Time      `json:"time"`
	ID      string         `json:"id,omitempty"`
	Model   string         `json:"model"`
	Version int64          `json:"version"`
	Inputs  []RecordTensor `json:"inputs"`
	Outputs []RecordTensor `json:"outputs"`
}

// RecordTensor is a tensor in a Record: its values as JSON numbers (BOOL
// as 0 or 1, BYTES as strings), or for a hashed input the hex SHA-256 of
// its bytes.
type RecordTensor struct {
	Name     string  `json:"name"`
	DataType string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	Data     []any   `json:"data,omitempty"`
	SHA256   string  `json:"sha256,omitempty"`
}

// SampleState says where a version's samples go and how many were kept.
type SampleState struct {
	Dir     string `json:"dir"`
	Written int64  `json:"written"`
}

// reservoir keeps a uniform sample of one window's requests (Vitter's
// algorithm R) and writes it to a file when the window closes.
type reservoir struct {
	opts       SampleOptions
	model      string
	version    int64
	seen       int64
	kept       []observation
	rng        *rand.Rand
	drop, hash map[string]bool
	mu         sync.Mutex // guards written, read by Quality
	written    int64
}

func newReservoir(opts SampleOptions, model string, version int64) (*reservoir, error) {
	if opts.PerWindow == 0 {
		opts.PerWindow = DefaultSamplesPerWindow
	}
	if opts.Files == 0 {
		opts.Files = DefaultSampleFiles
	}
	if opts.PerWindow < 0 || opts.Files < 0 {
		return nil, fmt.Errorf("monitor.samples: per_window %d and files %d must not be negative", opts.PerWindow, opts.Files)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("monitor.samples: %w", err)
	}
	r := &reservoir{opts: opts, model: model, version: version, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(version))),
		drop: map[string]bool{}, hash: map[string]bool{}}
	for _, n := range opts.Drop {
		r.drop[n] = true
	}
	for _, n := range opts.Hash {
		r.hash[n] = true
	}
	return r, nil
}

// offer considers o for the window's reservoir.
func (r *reservoir) offer(o observation) {
	r.seen++
	if len(r.kept) < r.opts.PerWindow {
		r.kept = append(r.kept, o)
		return
	}
	if j := r.rng.Int64N(r.seen); j < int64(r.opts.PerWindow) {
		r.kept[j] = o
	}
}

// flush writes the window's reservoir, oldest request first, to
// samples-<unix nanoseconds>.jsonl, then deletes the files past the
// limit, and starts the next window empty.
func (r *reservoir) flush(now time.Time) error {
	kept := r.kept
	r.kept, r.seen = nil, 0
	if len(kept) == 0 {
		return nil
	}
	slices.SortFunc(kept, func(a, b observation) int { return a.at.Compare(b.at) })
	path := filepath.Join(r.opts.Dir, fmt.Sprintf("samples-%019d.jsonl", now.UnixNano()))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, o := range kept {
		rec := Record{Time: o.at, ID: o.id, Model: r.model, Version: r.version}
		for _, t := range o.inputs {
			if r.drop[t.Name] {
				continue
			}
			rec.Inputs = append(rec.Inputs, recordTensor(t, r.hash[t.Name]))
		}
		for _, t := range o.outputs {
			rec.Outputs = append(rec.Outputs, recordTensor(t, false))
		}
		if err = enc.Encode(rec); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.mu.Lock()
	r.written += int64(len(kept))
	r.mu.Unlock()
	files, err := SampleFiles(r.opts.Dir)
	if err != nil {
		return err
	}
	for _, old := range files[:max(len(files)-r.opts.Files, 0)] {
		if err := os.Remove(old); err != nil {
			return err
		}
	}
	return nil
}

func (r *reservoir) state() SampleState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return SampleState{Dir: r.opts.Dir, Written: r.written}
}

func recordTensor(t tensor.Tensor, hashed bool) RecordTensor {
	rt := RecordTensor{Name: t.Name, DataType: t.DataType.String(), Shape: t.Shape}
	if hashed {
		sum := sha256.Sum256(t.Data)
		rt.SHA256 = hex.EncodeToString(sum[:])
		return rt
	}
	if t.DataType == tensor.Bytes {
		data := t.Data
		for len(data) >= 4 {
			n := int(uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24)
			if n > len(data)-4 {
				break
			}
			rt.Data = append(rt.Data, string(data[4:4+n]))
			data = data[4+n:]
		}
		return rt
	}
	n := int(tensor.Elements(t.Shape))
	if n*t.DataType.Size() != len(t.Data) {
		return rt
	}
	rt.Data = make([]any, n)
	for i := range n {
		v := t.Float64At(i)
		switch {
		case math.IsNaN(v), math.IsInf(v, 0):
			rt.Data[i] = strconv.FormatFloat(v, 'g', -1, 64) // JSON has no NaN: "NaN", "+Inf"
		default:
			rt.Data[i] = v
		}
	}
	return rt
}

// SampleFiles returns the samples files in dir, oldest first.
func SampleFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, "samples-") && strings.HasSuffix(name, ".jsonl") {
			files = append(files, filepath.Join(dir, name))
		}
	}
	slices.Sort(files) // the names hold zero-padded times
	return files, nil
}

// ReadSamples returns the records of the samples files in dir, oldest
// first, the last limit of them (all when limit is 0).
func ReadSamples(dir string, limit int) ([]Record, error) {
	files, err := SampleFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, path := range slices.Backward(files) {
		recs, err := readRecords(path)
		if err != nil {
			return nil, err
		}
		out = append(recs, out...)
		if limit > 0 && len(out) >= limit {
			return out[len(out)-limit:], nil
		}
	}
	return out, nil
}

func readRecords(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []Record
	dec := json.NewDecoder(bufio.NewReader(f))
	for dec.More() {
		var r Record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}
