package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/infer-serving/infer/pkg/profile"
)

// Result is one request's outcome and where its time went.
type Result struct {
	// Intended is when the schedule wanted it sent (open loop); Start and
	// End bracket the request itself.
	Intended, Start, End time.Time
	// Phases holds the parts the target could attribute: connect and write
	// from the client, queue to postprocess from the server's own report
	// (ServerReported says whether it sent one). Finish fills delay,
	// network (the remainder) and total.
	Phases         profile.Timing
	ServerReported bool
	// Err is nil on success; Kind names the failure for the report.
	Err  error
	Kind string
	// Attempts counts the sends, retries included (0 or 1: no retry).
	Attempts int
	// Gen holds a text generation request's own measures.
	Gen *Gen
	// Model names the model a Mix sent the request to (empty for a
	// target of one model); the report gives each its own figures.
	Model string
}

// Finish completes r's phases: the delay behind schedule, the remainder
// as network, and the total from the intended time, so that the budget
// phases add up to the total exactly.
func (r *Result) Finish() {
	if r.Intended.IsZero() || r.Intended.After(r.Start) {
		r.Intended = r.Start
	}
	r.Phases.Set(profile.Delay, r.Start.Sub(r.Intended))
	service := r.End.Sub(r.Start)
	known := time.Duration(0)
	for _, p := range profile.BudgetPhases {
		if p != profile.Delay && p != profile.Network {
			known += r.Phases.Get(p)
		}
	}
	// A server whose phases exceed what the client saw (clock skew between
	// its measure and ours) gets its phases scaled down to fit.
	if known > service && known > 0 {
		scale := float64(service) / float64(known)
		known = 0
		for _, p := range profile.BudgetPhases {
			if p != profile.Delay && p != profile.Network {
				r.Phases.Set(p, time.Duration(float64(r.Phases.Get(p))*scale))
				known += r.Phases.Get(p)
			}
		}
	}
	r.Phases.Set(profile.Network, service-known)
	r.Phases.Set(profile.Total, r.End.Sub(r.Intended))
}

// Service returns the request's own time, without the delay behind the
// schedule: what a generator that ignores coordinated omission reports.
func (r *Result) Service() time.Duration { return r.End.Sub(r.Start) }

// Error kinds.
const (
	KindTimeout  = "timeout"
	KindRefused  = "connection refused"
	KindReset    = "connection reset"
	KindCanceled = "canceled"
	KindOther    = "error"
)

// Fail records err on r, naming its kind.
func (r *Result) Fail(err error) {
	r.Err = err
	r.Kind = errorKind(err)
}

// FailStatus records an unsuccessful status code and what the server
// said in body (see serverMessage).
func (r *Result) FailStatus(code int, body string) {
	r.Err = fmt.Errorf("status %d: %s", code, serverMessage(body))
	r.Kind = fmt.Sprintf("status %d", code)
}

func errorKind(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return KindOther
}
