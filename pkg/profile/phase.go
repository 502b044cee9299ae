// Package profile owns the vocabulary of the latency budget: the names of
// the phases a request's time is split into, and the arithmetic on them.
// Every other package refers to phases through these values; none spells a
// phase name as a string of its own.
package profile

import "time"

// Phase is one part of a request's latency budget.
type Phase uint8

// The phases, in the order a request passes through them.
const (
	// Delay is how late the client sent the request after its intended
	// send time (open loop): the time coordinated omission hides.
	Delay Phase = iota
	// Connect is DNS lookup plus TCP (and TLS) set-up, measured by the client.
	Connect
	// Write is the client writing the request, from holding a connection
	// to the last byte written.
	Write
	// Broker is the time a request spent in a message broker (NATS
	// JetStream, Redis Streams), from its publication to the server's
	// fetch: measured by the server from the broker's own timestamp, and
	// reported beside its phases (Server-Timing "broker") when non-zero.
	Broker
	// Admission is the time a request waits, its body unread, for its
	// model version to admit it: while the version works on as many
	// requests as batching needs, the others wait here (runner.Model.Enter).
	Admission
	// Queue is the time a request waits for a batch and an instance.
	Queue
	// Cache is the response cache's part: the lookup that answered a
	// request, or the lookup and insertion around one that ran.
	Cache
	// Preprocess is decoding and tokenization before inference.
	Preprocess
	// Infer is the batch's execution in the runtime.
	Infer
	// Postprocess is splitting, filtering and encoding outputs.
	Postprocess
	// Network is the time on the wire, in the server outside its phases,
	// and in the client: the remainder of the client's total after every
	// phase it could attribute.
	Network
	// Total is the whole: the server's handling time in Server-Timing, the
	// client's latency in the load generator.
	Total

	numPhases
)

// NumPhases is the number of phases.
const NumPhases = int(numPhases)

var phaseNames = [NumPhases]string{
	Delay:       "delay",
	Connect:     "connect",
	Write:       "write",
	Broker:      "broker",
	Network:     "network",
	Admission:   "admission",
	Queue:       "queue",
	Cache:       "cache",
	Preprocess:  "preprocess",
	Infer:       "infer",
	Postprocess: "postprocess",
	Total:       "total",
}

// String returns the phase's name as it appears in headers and metrics.
func (p Phase) String() string {
	if int(p) < NumPhases {
		return phaseNames[p]
	}
	return "unknown"
}

// ParsePhase returns the phase called name.
func ParsePhase(name string) (Phase, bool) {
	for i, n := range phaseNames {
		if n == name {
			return Phase(i), true
		}
	}
	return 0, false
}

// ServerPhases are the phases a server measures for each request, in order.
var ServerPhases = []Phase{Admission, Queue, Cache, Preprocess, Infer, Postprocess}

// BudgetPhases are the parts a load generator splits a request's latency
// into, in order; they add up to Total.
var BudgetPhases = []Phase{Delay, Connect, Write, Broker, Admission, Queue, Cache, Preprocess, Infer, Postprocess, Network}

// Timing is one request's measured phases.
type Timing struct {
	durations [NumPhases]time.Duration
	// BatchSize is the number of rows in the batch the request ran in.
	BatchSize int
	// Steps are a pipeline's steps, in the order they ran (nil for other
	// models); the phases above hold their sums.
	Steps []Step
}

// Set records d as the duration of phase p.
func (t *Timing) Set(p Phase, d time.Duration) { t.durations[p] = d }

// Add adds d to the duration of phase p.
func (t *Timing) Add(p Phase, d time.Duration) { t.durations[p] += d }

// Get returns the duration of phase p.
func (t *Timing) Get(p Phase) time.Duration { return t.durations[p] }
