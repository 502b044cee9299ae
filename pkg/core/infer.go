package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Call is one inference request as a front end hands it to the core.
// The front end fills the names, Start and its two hooks; Decode fills
// Request and Timeout.
type Call struct {
	// Model and Version are the names the client gave; an empty Version
	// is routed by the model's traffic policy.
	Model, Version string
	// Protocol labels the call in the metrics: ProtoHTTP or ProtoGRPC.
	Protocol string
	// Start is when the front end began the call: preprocess and total
	// are measured from it.
	Start time.Time
	// Header returns a request header (HTTP) or metadata value (gRPC) by
	// its name, for sticky routing by header; nil when there are none.
	Header func(name string) string
	// Read reads the request's body into memory (nil: there is none to
	// read, as a gRPC message arrives read). The core calls it once the
	// call is routed and its version could take it, so that a call the
	// version would refuse is refused before its body is read; and before
	// the call takes its place in the version's work, so that a client
	// slow to send its body holds no place another request could use.
	Read func(*Call) error
	// Decode decodes the request into Request and Timeout. The core calls
	// it once the call has its place. Its errors (and Read's) are the
	// client's when they wrap protocol.ErrBadRequest.
	Decode func(*Call) error
	// BinaryBytes is how many bytes of tensor data the body carries after
	// its JSON header, known from its framing before it is read (the
	// binary tensor extension: Content-Length less
	// Inference-Header-Content-Length); 0 when unknown or none. A version
	// refuses a call whose binary part alone passes its bound on one
	// request's input bytes before Decode reads a byte of it.
	BinaryBytes int64
	// Encode puts the answer into the front end's protocol, in memory
	// (nil: nothing to encode). The core times it as the postprocess
	// phase; Result.Timing has neither postprocess nor total yet.
	Encode func(*Result) error

	// Request is what Decode read: id, inputs, outputs wanted, priority.
	Request runner.Request
	// Classes, by output name, asks for that many top classes in place of
	// the output's tensor (Triton's classification extension; see
	// classify). Decode fills it.
	Classes map[string]int64
	// Timeout bounds the call from its submission to the runner (0:
	// Options.DefaultTimeout).
	Timeout time.Duration

	place  runner.Place  // the call's place in its version's work
	routed *runner.Model // the version it was routed to before Decode; nil when it routes after
	result Result        // what Infer returns: the call's own
}

// CheckInputBytes refuses n bytes of input data when they pass the bound
// on one request's bytes of the version the call was routed to (see
// runner.Model.CheckInputBytes; the error wraps runner.ErrTooLarge): a
// Decode that counts its tensors' bytes before it makes them asks first.
// Nil when the call routes only after Decode (by the request's id): the
// runner checks the decoded inputs then.
func (c *Call) CheckInputBytes(n int64) error {
	if c.routed == nil {
		return nil
	}
	return c.routed.CheckInputBytes(n)
}

// Result is a call's answer.
type Result struct {
	// Model is the version the call was routed to (a fallback may have
	// answered in its place: Via).
	Model *runner.Model
	// Outputs are the output tensors, in the order the request named
	// them (model order when it named none).
	Outputs []tensor.Tensor
	// Timing holds every phase of the call (profile's names), and the
	// rows of the batch it ran in.
	Timing profile.Timing
	// Via names the fallback that answered, "" when the model did: the
	// value of FallbackHeader.
	Via string
	// Draining is true when the server is shutting down: the front end
	// asks its client to move to another replica.
	Draining bool
	// Route names the route a router model took, "" for other models: the
	// value of RouteHeader.
	Route string
}

// Infer serves one call, in this order: it notes whether the server is
// draining; routes the call (the model's traffic policy read once: before
// Decode when the policy needs nothing of the body, else after it, by the
// request id) and sheds it when the version's queue cannot take it; has
// Decode read it; runs it through the version's response cache, circuit
// breaker and fallbacks to its queue, batch and runtime, under its
// timeout; has Encode answer it; and then counts it in the metrics and
// mirrors it to the policy's shadow version. Every protocol gets the same
// phases, measured the same way:
//
//   - preprocess: from Call.Start to the submission to the runner (the
//     front end's reading and decoding), plus the runner's own
//     (tokenization);
//   - queue, cache and infer: the runner's;
//   - postprocess: Encode;
//   - total: from Call.Start to the end of Encode.
//
// The errors are the runner's sentinel errors, protocol.ErrBadRequest
// (wrapped), or those of this package; Status maps them.
//
// The result is the call's own, valid as long as the call is. Once Infer
// has returned it, nothing refers to the call or the request's input data
// any more (a shadow copy keeps its own): the front end may reuse them and
// the buffer it decoded the inputs from. After an error it may not: a call
// that timed out may still be read by the batch it was queued for.
func (s *Core) Infer(ctx context.Context, call *Call) (*Result, error) {
	res := &call.result
	*res = Result{Draining: s.draining.Load()}
	m, err := s.admit(ctx, call)
	if err == nil && m != nil && call.BinaryBytes > 0 {
		if err = m.CheckInputBytes(call.BinaryBytes); err != nil {
			err = fmt.Errorf("the body's framing announces %d bytes of binary tensor data: %w", call.BinaryBytes, err)
		}
	}
	if err == nil && call.Read != nil {
		err = call.Read(call)
	}
	var waited time.Duration
	if err == nil && m != nil {
		waited, err = m.Enter(ctx, &call.place)
	}
	if err == nil && call.Decode != nil {
		call.routed = m
		err = call.Decode(call)
	}
	if err == nil && m == nil {
		m, err = s.route(ctx, call.Model, call.Version, func(deploy.Policy) string { return call.Request.ID })
		if err == nil {
			waited, err = m.Enter(ctx, &call.place)
		}
	}
	defer call.place.Leave() // when no batch gave it back
	if err != nil {
		s.metrics.record(m, call.Model, call.Protocol, nil, err)
		return nil, err
	}
	obs := s.metrics.forModel(m)
	obs.inflight.Inc()
	defer obs.inflight.Dec()

	// Phases are measured as offsets from Call.Start: time.Since reads only
	// the monotonic clock, where time.Now reads the wall clock too.
	submitted := time.Since(call.Start)
	call.Request.Header, call.Request.Place = call.Header, &call.place
	var out *runner.Response
	var via string
	if err = checkClasses(m, call.Classes); err == nil {
		out, via, err = s.Run(ctx, m, &call.Request, call.Timeout)
	}
	call.place.Leave() // the run is over, whatever answered it
	call.Request.Place = nil
	if err == nil {
		post := time.Since(call.Start)
		res.Model, res.Outputs, res.Via, res.Timing, res.Route = m, out.Outputs, via, out.Timing, out.Route
		if len(call.Classes) > 0 {
			res.Outputs, err = classify(m, out.Outputs, call.Classes)
		}
		res.Timing.Set(profile.Admission, waited)
		res.Timing.Add(profile.Preprocess, submitted-waited)
		if err == nil && call.Encode != nil {
			err = call.Encode(res)
		}
		end := time.Since(call.Start)
		res.Timing.Add(profile.Postprocess, end-post) // after a pipeline's output steps
		res.Timing.Set(profile.Total, end)
	}
	if err != nil {
		s.metrics.record(m, "", call.Protocol, nil, err)
		return nil, err
	}
	s.metrics.record(m, "", call.Protocol, &res.Timing, nil)
	if shadow := s.shadowFor(call.Model, call.Version, m); shadow != nil {
		s.shadow.mirror(shadowJob{name: call.Model, primary: m, shadow: shadow, req: call.Request, answer: out.Outputs})
	}
	return res, nil
}

// admit routes a call from its names and headers alone, when the model's
// traffic policy needs nothing of its body, and sheds it when the version
// would refuse it now (runner.Model.Admit: too many wait, or its host is
// down), before its body is read. The call takes its place in the
// version's work (runner.Model.Enter) once its body is read. The model is
// nil, with no error, when routing must wait for the request id.
func (s *Core) admit(ctx context.Context, call *Call) (*runner.Model, error) {
	m, routed, err := s.routeEarly(ctx, call.Model, call.Version, call.Header)
	if err != nil || !routed {
		return m, err
	}
	if err := m.Admit(); err != nil {
		return m, shedError{err}
	}
	return m, nil
}

// shedError is an admission's refusal: the call was not decoded.
type shedError struct{ error }

func (e shedError) Unwrap() error { return e.error }

// Shed reports whether err refused a call at admission, before its body
// was read: a client may retry it in a second.
func Shed(err error) bool { return errors.As(err, new(shedError)) }

// Run executes req on m under timeout, or the core's default when it is
// 0, through m's circuit breaker when it has one; via names the fallback
// that answered instead of m, if one did. It neither times nor counts the
// request: Infer does.
func (s *Core) Run(ctx context.Context, m *runner.Model, req *runner.Request, timeout time.Duration) (_ *runner.Response, via string, _ error) {
	if timeout <= 0 {
		timeout = s.opts.DefaultTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if gd := s.guards.get(m); gd != nil {
		resp, via, err := s.answer(ctx, gd, req)
		if via != "" {
			s.metrics.fallback(m, via)
		}
		return resp, via, err
	}
	resp, err := s.execute(ctx, m, req)
	return resp, "", err
}
