package profile

import (
	"strconv"
	"strings"
	"time"
)

// AppendServerTiming appends t's server phases and total as a W3C
// Server-Timing header value, durations in milliseconds:
//
//	queue;dur=0.012, preprocess;dur=0.004, infer;dur=0.153, postprocess;dur=0.008, total;dur=0.181
//
// The admission phase appears only when the request waited to be admitted,
// the cache phase only when a response cache took part, and the broker
// phase only for a request that came through a message broker. A
// pipeline's steps follow the phases, each named StepPrefix and the step's
// name.
func (t *Timing) AppendServerTiming(dst []byte) []byte {
	first := true
	for _, p := range reportedPhases {
		if (p == Cache || p == Admission || p == Broker) && t.durations[p] == 0 {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = appendMetric(dst, "", p.String(), t.durations[p])
	}
	for _, s := range t.Steps {
		dst = appendMetric(append(dst, ", "...), StepPrefix, s.Name, s.Duration)
	}
	return dst
}

func appendMetric(dst []byte, prefix, name string, d time.Duration) []byte {
	dst = append(append(dst, prefix...), name...)
	dst = append(dst, ";dur="...)
	return AppendMillis(dst, d)
}

// AppendMillis appends d in milliseconds, exactly, with no trailing zeros
// (0.01999 for 19.99 µs): the digits strconv.AppendFloat writes for
// float64(d)/1e6 with 'f' and -1, by integer arithmetic at a tenth of
// its cost. Under 10^15 ns (11 days) the exact decimal has at most 15
// significant digits, and a float64 tells every such decimal from every
// other: the shortest decimal that reads back as the float is the exact
// one. Longer durations are left to strconv.
func AppendMillis(dst []byte, d time.Duration) []byte {
	if d < 0 {
		if d <= -exactMillis {
			return strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', -1, 64)
		}
		dst, d = append(dst, '-'), -d
	}
	if d >= exactMillis {
		return strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', -1, 64)
	}
	ms, ns := int64(d/time.Millisecond), int64(d%time.Millisecond)
	dst = strconv.AppendInt(dst, ms, 10)
	if ns == 0 {
		return dst
	}
	var frac [6]byte
	for i := len(frac) - 1; i >= 0; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	n := len(frac)
	for frac[n-1] == '0' {
		n--
	}
	return append(append(dst, '.'), frac[:n]...)
}

// exactMillis bounds the durations AppendMillis writes itself.
const exactMillis = 1e15

// StepPrefix begins the Server-Timing name of a pipeline step's metric:
// "step.resize;dur=0.41".
const StepPrefix = "step."

// Step is one pipeline step's time.
type Step struct {
	// Name is the step's name in its pipeline's config.yaml: a
	// Server-Timing token (letters, digits, '-' and '_').
	Name     string
	Duration time.Duration
}

// reportedPhases are the phases Server-Timing can carry, in order.
var reportedPhases = append([]Phase{Broker}, append(ServerPhases[:len(ServerPhases):len(ServerPhases)], Total)...)

// ParseServerTiming reads the phases it knows from a Server-Timing header
// value into a Timing; ok is false when it found none. Unknown metrics and
// parameters other than dur are ignored, as the specification asks.
func ParseServerTiming(v string) (t Timing, ok bool) {
	for metric := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(metric), ";")
		p, known := ParsePhase(strings.TrimSpace(name))
		if !known {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.TrimSpace(k) != "dur" {
				continue
			}
			ms, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(val), `"`), 64)
			if err != nil || ms < 0 {
				continue
			}
			t.durations[p] = time.Duration(ms * float64(time.Millisecond))
			ok = true
		}
	}
	return t, ok
}
