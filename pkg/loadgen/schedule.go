// Package loadgen is infer bench's load generator: schedules that say when
// each request is due, targets that send one request and time its parts,
// and recorders that keep every latency in HdrHistograms. Open-loop runs
// measure latency from each request's intended send time, so a stalled
// server shows as the latency its users would see, not as one slow request
// (coordinated omission, corrected as wrk2 does).
package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Schedule says when each request of an open-loop run is due. Times are
// absolute offsets from the start, so a late send never shifts the ones
// after it.
type Schedule interface {
	// At returns when request n (from 0) is due, as an offset from the
	// start. Calls come with n increasing by one, so a schedule may keep
	// state between them.
	At(n uint64) time.Duration
	// Rate returns the intended rate at offset t, in requests per second.
	Rate(t time.Duration) float64
}

// Constant sends QPS requests a second, evenly spaced.
type Constant struct{ QPS float64 }

// At implements Schedule: n / QPS.
func (c Constant) At(n uint64) time.Duration { return seconds(float64(n) / c.QPS) }

// Rate implements Schedule.
func (c Constant) Rate(time.Duration) float64 { return c.QPS }

// Ramp rises linearly from From to To requests a second over Over, then
// holds To. With rate r(t) = From + (To-From)·t/Over, the requests due by
// t are H(t) = From·t + (To-From)·t²/(2·Over); At(n) solves H(t) = n.
type Ramp struct {
	From, To float64
	Over     time.Duration
}

// At implements Schedule.
func (r Ramp) At(n uint64) time.Duration {
	over := r.Over.Seconds()
	x := float64(n)
	inRamp := r.From*over + (r.To-r.From)*over/2
	if x > inRamp || over == 0 {
		return seconds(over + (x-inRamp)/r.To)
	}
	a, b := (r.To-r.From)/(2*over), r.From
	if math.Abs(a) < 1e-12 {
		return seconds(x / b)
	}
	// a·t² + b·t − n = 0, the root in [0, over]; written to stay exact when
	// b² dominates.
	disc := math.Sqrt(b*b + 4*a*x)
	return seconds(2 * x / (b + disc))
}

// Rate implements Schedule.
func (r Ramp) Rate(t time.Duration) float64 {
	if t >= r.Over {
		return r.To
	}
	return r.From + (r.To-r.From)*t.Seconds()/r.Over.Seconds()
}

// Steps starts at Start requests a second and adds Step every Every, up to
// Max (no limit when 0).
type Steps struct {
	Start, Step, Max float64
	Every            time.Duration

	// cursor: the step holding the last request asked for, and how many
	// requests came before it.
	step   int
	before float64
}

func (s *Steps) rateOf(k int) float64 {
	r := s.Start + float64(k)*s.Step
	if s.Max > 0 {
		r = min(r, s.Max)
	}
	return r
}

// At implements Schedule.
func (s *Steps) At(n uint64) time.Duration {
	x := float64(n)
	every := s.Every.Seconds()
	for {
		inStep := s.rateOf(s.step) * every
		if x < s.before+inStep || s.Max > 0 && s.rateOf(s.step) == s.Max {
			return seconds(float64(s.step)*every + (x-s.before)/s.rateOf(s.step))
		}
		s.before += inStep
		s.step++
	}
}

// Rate implements Schedule.
func (s *Steps) Rate(t time.Duration) float64 { return s.rateOf(int(t / s.Every)) }

// Sine varies the rate as Mean + Amplitude·sin(2πt/Period); Amplitude must
// not exceed Mean. The requests due by t are
// H(t) = Mean·t + Amplitude·Period/(2π)·(1 − cos(2πt/Period)), which
// rises monotonically, so At(n) finds t by Newton's method from the last
// answer, falling back to bisection.
type Sine struct {
	Mean, Amplitude float64
	Period          time.Duration

	last float64 // seconds: the previous answer, where the search starts
}

func (s *Sine) hits(t float64) float64 {
	w := 2 * math.Pi / s.Period.Seconds()
	return s.Mean*t + s.Amplitude/w*(1-math.Cos(w*t))
}

func (s *Sine) rate(t float64) float64 {
	return s.Mean + s.Amplitude*math.Sin(2*math.Pi*t/s.Period.Seconds())
}

// At implements Schedule.
func (s *Sine) At(n uint64) time.Duration {
	x := float64(n)
	lo, hi := s.last, s.last+1/max(s.Mean-s.Amplitude, 1e-9)+1
	for s.hits(hi) < x {
		hi = 2*hi + 1
	}
	t := s.last
	for range 100 {
		f := s.hits(t) - x
		if math.Abs(f) < 1e-9 {
			break
		}
		if f < 0 {
			lo = t
		} else {
			hi = t
		}
		next := t - f/s.rate(t)
		if r := s.rate(t); r <= 0 || next <= lo || next >= hi {
			next = (lo + hi) / 2
		}
		t = next
	}
	s.last = t
	return seconds(t)
}

// Rate implements Schedule.
func (s *Sine) Rate(t time.Duration) float64 { return s.rate(t.Seconds()) }

// Poisson sends QPS requests a second on average, with exponentially
// distributed gaps (a Poisson process), from a seeded generator so that a
// run can be repeated exactly.
type Poisson struct {
	QPS  float64
	rng  *rand.Rand
	next float64 // seconds: when the next request is due
}

// NewPoisson returns a Poisson schedule of rate qps from seed.
func NewPoisson(qps float64, seed uint64) *Poisson {
	return &Poisson{QPS: qps, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// At implements Schedule.
func (p *Poisson) At(uint64) time.Duration {
	t := p.next
	p.next += p.rng.ExpFloat64() / p.QPS
	return seconds(t)
}

// Rate implements Schedule.
func (p *Poisson) Rate(time.Duration) float64 { return p.QPS }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

var (
	_ Schedule = Constant{}
	_ Schedule = Ramp{}
	_ Schedule = (*Steps)(nil)
	_ Schedule = (*Sine)(nil)
	_ Schedule = (*Poisson)(nil)
)

// Validate checks a schedule's parameters, naming the one at fault.
func Validate(s Schedule) error {
	positive := func(name string, v float64) error {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%s: %v, want a rate above 0", name, v)
		}
		return nil
	}
	switch s := s.(type) {
	case Constant:
		return positive("qps", s.QPS)
	case Ramp:
		if s.From < 0 || s.Over <= 0 {
			return fmt.Errorf("ramp: from %v over %v, want from >= 0 over a positive duration", s.From, s.Over)
		}
		return positive("ramp to", s.To)
	case *Steps:
		if s.Every <= 0 || s.Step < 0 || s.Max < 0 {
			return fmt.Errorf("step: every %v, step %v, max %v: want a positive period and non-negative step and max", s.Every, s.Step, s.Max)
		}
		return positive("step start", s.Start)
	case *Sine:
		if s.Amplitude < 0 || s.Amplitude > s.Mean || s.Period <= 0 {
			return fmt.Errorf("sine: amplitude %v must be within 0..mean (%v), period %v positive", s.Amplitude, s.Mean, s.Period)
		}
		return positive("sine mean", s.Mean)
	case *Poisson:
		return positive("qps", s.QPS)
	}
	return nil
}
