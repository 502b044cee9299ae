package loadgen

import (
	"math"
	"testing"
	"time"
)

// sendsBy counts the requests a schedule has due by t.
func sendsBy(s Schedule, t time.Duration) int {
	n := 0
	for s.At(uint64(n)) <= t {
		n++
	}
	return n
}

func TestScheduleSendsByTime(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    func() Schedule
		at   time.Duration
		want float64 // requests due by at, from the closed form
	}{
		{"constant", func() Schedule { return Constant{QPS: 1000} }, 2500 * time.Millisecond, 2501},
		// Ramp 100→500 over 10s: H(t) = 100t + 20t²; H(5) = 1000; H(10) = 3000; then 500/s.
		{"ramp middle", func() Schedule { return Ramp{From: 100, To: 500, Over: 10 * time.Second} }, 5 * time.Second, 1001},
		{"ramp end", func() Schedule { return Ramp{From: 100, To: 500, Over: 10 * time.Second} }, 10 * time.Second, 3001},
		{"ramp after", func() Schedule { return Ramp{From: 100, To: 500, Over: 10 * time.Second} }, 12 * time.Second, 4001},
		{"ramp from zero", func() Schedule { return Ramp{From: 0, To: 200, Over: 10 * time.Second} }, 5 * time.Second, 251},
		// Steps 100, 200, 300 each second, capped at 300: 100+200+300+300·0.5.
		{"steps", func() Schedule { return &Steps{Start: 100, Step: 100, Max: 300, Every: time.Second} }, 3500 * time.Millisecond, 751},
		// Sine 500±200 with a 4s period: H(1) = 500 + 200·4/(2π)·(1 − cos(π/2)).
		{"sine quarter", func() Schedule { return &Sine{Mean: 500, Amplitude: 200, Period: 4 * time.Second} }, time.Second, 500 + 800/(2*math.Pi) + 1},
		{"sine period", func() Schedule { return &Sine{Mean: 500, Amplitude: 200, Period: 4 * time.Second} }, 4 * time.Second, 2001},
	} {
		got := float64(sendsBy(tc.s(), tc.at))
		if math.Abs(got-tc.want) > 1 {
			t.Errorf("%s: %v due by %v, want %.1f", tc.name, got, tc.at, tc.want)
		}
	}
}

func TestScheduleIsAbsolute(t *testing.T) {
	// Each request's time depends on n alone: asking again gives the same.
	s := Constant{QPS: 3}
	if s.At(3) != time.Second || s.At(3) != s.At(3) {
		t.Fatalf("constant 3/s: request 3 due at %v", s.At(3))
	}
	r := Ramp{From: 10, To: 10, Over: time.Second}
	if got := r.At(25); got != 2500*time.Millisecond {
		t.Fatalf("flat ramp: %v", got)
	}
}

func TestPoissonRateAndSpread(t *testing.T) {
	p := NewPoisson(1000, 42)
	const n = 20000
	var last time.Duration
	var gaps []float64
	for i := range n {
		at := p.At(uint64(i))
		if at < last {
			t.Fatalf("request %d due at %v, before %v", i, at, last)
		}
		gaps = append(gaps, (at - last).Seconds())
		last = at
	}
	rate := float64(n-1) / last.Seconds()
	if math.Abs(rate-1000) > 30 { // 3% for 20,000 exponential gaps
		t.Fatalf("mean rate %.1f, want about 1000", rate)
	}
	// Exponential gaps: the standard deviation equals the mean.
	var mean, sq float64
	for _, g := range gaps[1:] {
		mean += g
	}
	mean /= float64(len(gaps) - 1)
	for _, g := range gaps[1:] {
		sq += (g - mean) * (g - mean)
	}
	if sd := math.Sqrt(sq / float64(len(gaps)-2)); math.Abs(sd/mean-1) > 0.05 {
		t.Fatalf("gap sd/mean %.3f, want about 1 (exponential)", sd/mean)
	}
	// The same seed gives the same run.
	a, b := NewPoisson(100, 7), NewPoisson(100, 7)
	for i := range 100 {
		if a.At(uint64(i)) != b.At(uint64(i)) {
			t.Fatal("same seed, different schedules")
		}
	}
}

func TestValidateNamesTheParameter(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want string
	}{
		{Constant{QPS: 0}, "qps"},
		{Ramp{From: 10, To: 0, Over: time.Second}, "ramp to"},
		{&Sine{Mean: 100, Amplitude: 200, Period: time.Second}, "amplitude"},
		{&Steps{Start: 1, Step: 1, Every: 0}, "every"},
	} {
		if err := Validate(tc.s); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%#v: %v, want %q", tc.s, err, tc.want)
		}
	}
}
