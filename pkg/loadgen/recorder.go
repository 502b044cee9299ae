package loadgen

import (
	"maps"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/infer-serving/infer/pkg/profile"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3
// significant digits.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histDigits) }

func micros(d time.Duration) int64 { return max(int64(d/time.Microsecond), 0) }

// Recorder accumulates results. It is not safe for concurrent use: each
// worker keeps its own, and they are merged for the report.
type Recorder struct {
	// Total is the corrected latency (from the intended send time), Service
	// the uncorrected one (from the actual send), of the successes and of
	// the requests that timed out, each of those at the time it was given
	// up on (at least its timeout): a request dropped at its deadline is
	// the slowest kind, not a missing one, so that a latency objective or
	// --find-max cannot pass on requests that never came back (k6 counts a
	// timed-out request's duration the same way). Other failures (refused,
	// reset, an error status) end early and are counted only as errors.
	Total, Service *hdr.Histogram
	// Phases holds each budget phase; PhaseSum their sums, for shares.
	Phases   [profile.NumPhases]*hdr.Histogram
	PhaseSum [profile.NumPhases]time.Duration
	// OK counts successes; Errors failures by kind; Late the sends made
	// more than LateAfter behind schedule; ServerReported the successes
	// whose server sent its own phases.
	OK, Late, ServerReported int64
	// Retries counts the sends beyond each request's first.
	Retries int64
	// Gen accumulates text generation measures, when there are any;
	// Objectives decide which requests count towards goodput.
	Gen        *genRecorder
	Objectives []Objective
	Errors     map[string]int64
	// ErrorMessages holds the first message of each kind in Errors (a
	// status's is what the server said), so that a report can say what
	// went wrong, not only how often.
	ErrorMessages map[string]string
	// First and Last bracket the intended send times recorded.
	First, Last time.Time
	// NewConns counts the requests that opened a connection; Connects
	// holds their connect times alone, apart from the reused connections'
	// zeros.
	NewConns int64
	Connects *hdr.Histogram
	// Epoch, when set, starts Timeline: one bucket per second of intended
	// send time.
	Epoch    time.Time
	Timeline []*Second
	// Models holds each model's own figures, by name, for the requests a
	// Mix sent (Result.Model); nil for a target of one model.
	Models map[string]*ModelRecord
}

// ModelRecord is one model's part of a run: its requests, failures and
// the latencies of its successes and timeouts (see Recorder.Total; 2
// significant digits, to keep a mix of many models small).
type ModelRecord struct {
	Requests, Errors int64
	Latency          *hdr.Histogram
}

func (r *Recorder) model(name string) *ModelRecord {
	if r.Models == nil {
		r.Models = map[string]*ModelRecord{}
	}
	m := r.Models[name]
	if m == nil {
		m = &ModelRecord{Latency: hdr.New(histMin, histMax, 2)}
		r.Models[name] = m
	}
	return m
}

// Second is one second of a run: requests meant to be sent in it, their
// failures, and the latencies of its successes and timeouts (see
// Recorder.Total; 2 significant digits).
type Second struct {
	Requests, Errors int64
	Latency          *hdr.Histogram
}

func (r *Recorder) second(t time.Time) *Second {
	i := int(t.Sub(r.Epoch) / time.Second)
	if r.Epoch.IsZero() || i < 0 || i > 24*3600 {
		return nil
	}
	for len(r.Timeline) <= i {
		r.Timeline = append(r.Timeline, nil)
	}
	if r.Timeline[i] == nil {
		r.Timeline[i] = &Second{Latency: hdr.New(histMin, histMax, 2)}
	}
	return r.Timeline[i]
}

// LateAfter is how far behind schedule a send counts as late.
const LateAfter = time.Millisecond

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{Total: newHist(), Service: newHist(), Connects: newHist(), Errors: map[string]int64{}, ErrorMessages: map[string]string{}}
	for _, p := range append(profile.BudgetPhases, profile.Total) {
		r.Phases[p] = newHist()
	}
	return r
}

// Record adds one finished result.
func (r *Recorder) Record(res *Result) {
	if r.First.IsZero() || res.Intended.Before(r.First) {
		r.First = res.Intended
	}
	if res.Intended.After(r.Last) {
		r.Last = res.Intended
	}
	if res.Attempts > 1 {
		r.Retries += int64(res.Attempts - 1)
	}
	if res.Phases.Get(profile.Delay) > LateAfter {
		r.Late++
	}
	if c := res.Phases.Get(profile.Connect); c > 0 {
		r.NewConns++
		_ = r.Connects.RecordValue(micros(c))
	}
	sec := r.second(res.Intended)
	if sec != nil {
		sec.Requests++
	}
	var mod *ModelRecord
	if res.Model != "" {
		mod = r.model(res.Model)
		mod.Requests++
	}
	if res.Err != nil {
		if r.Errors[res.Kind]++; r.Errors[res.Kind] == 1 {
			r.ErrorMessages[res.Kind] = errorMessage(res.Err)
		}
		if sec != nil {
			sec.Errors++
		}
		if mod != nil {
			mod.Errors++
		}
		if res.Kind == KindTimeout {
			r.recordLatency(res, sec, mod)
		}
		return
	}
	r.recordLatency(res, sec, mod)
	if res.Gen != nil {
		if r.Gen == nil {
			r.Gen = newGenRecorder()
		}
		r.Gen.record(res.Gen, r.Objectives)
	}
	r.OK++
	if res.ServerReported {
		r.ServerReported++
	}
	for _, p := range append(profile.BudgetPhases, profile.Total) {
		d := res.Phases.Get(p)
		r.PhaseSum[p] += d
		_ = r.Phases[p].RecordValue(micros(d))
	}
}

// recordLatency adds res's corrected and uncorrected latencies (see
// Total), and its second's and model's.
func (r *Recorder) recordLatency(res *Result, sec *Second, mod *ModelRecord) {
	total := micros(res.Phases.Get(profile.Total))
	if sec != nil {
		_ = sec.Latency.RecordValue(total)
	}
	if mod != nil {
		_ = mod.Latency.RecordValue(total)
	}
	_ = r.Total.RecordValue(total)
	_ = r.Service.RecordValue(micros(res.Service()))
}

// Merge adds o's results to r.
func (r *Recorder) Merge(o *Recorder) {
	r.Total.Merge(o.Total)
	r.Service.Merge(o.Service)
	r.Connects.Merge(o.Connects)
	r.NewConns += o.NewConns
	for p, h := range o.Phases {
		if h != nil {
			r.Phases[p].Merge(h)
			r.PhaseSum[p] += o.PhaseSum[p]
		}
	}
	r.OK += o.OK
	r.Late += o.Late
	r.Retries += o.Retries
	if o.Gen != nil {
		if r.Gen == nil {
			r.Gen = newGenRecorder()
		}
		r.Gen.merge(o.Gen)
	}
	r.ServerReported += o.ServerReported
	for k, v := range maps.All(o.Errors) {
		r.Errors[k] += v
	}
	for k, m := range maps.All(o.ErrorMessages) {
		if r.ErrorMessages == nil {
			r.ErrorMessages = map[string]string{}
		}
		if _, ok := r.ErrorMessages[k]; !ok {
			r.ErrorMessages[k] = m
		}
	}
	if !o.First.IsZero() && (r.First.IsZero() || o.First.Before(r.First)) {
		r.First = o.First
	}
	if o.Last.After(r.Last) {
		r.Last = o.Last
	}
	for name, m := range o.Models {
		mine := r.model(name)
		mine.Requests += m.Requests
		mine.Errors += m.Errors
		mine.Latency.Merge(m.Latency)
	}
	if r.Epoch.IsZero() {
		r.Epoch = o.Epoch
	}
	for i, s := range o.Timeline {
		if s == nil || !r.Epoch.Equal(o.Epoch) {
			continue
		}
		mine := r.second(r.Epoch.Add(time.Duration(i) * time.Second))
		mine.Requests += s.Requests
		mine.Errors += s.Errors
		mine.Latency.Merge(s.Latency)
	}
}

// Count returns the number of results recorded.
func (r *Recorder) Count() int64 {
	n := r.OK
	for _, v := range r.Errors {
		n += v
	}
	return n
}
