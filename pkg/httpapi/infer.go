package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
)

// BatchSizeHeader carries the number of rows in the batch a request ran in.
const BatchSizeHeader = "Inference-Batch-Size"

// inference is one infer call's state, over either HTTP server: the
// core call, the request's decoder, the pooled buffers of its body and
// its answer, and the length of the answer's JSON header when it carries
// binary tensors. An inference is reused from one call to the next (the
// front pools them, with everything they hold); the hooks the core calls
// are bound once, when it is first prepared.
type inference struct {
	call    core.Call
	dec     protocol.RequestDecoder
	req     *protocol.InferRequest
	resp    protocol.InferResponse
	answer  []byte
	in, out []byte
	held    int64 // bytes of the body's buffer charged to the API's budget

	// read reads the body into the buffer it is given (see readBody).
	read func(buf []byte) ([]byte, error)
	// headerLength is the request's Inference-Header-Content-Length (-1:
	// none), headerErr its fault; answerHeader the answer's (-1: all JSON).
	headerLength, answerHeader int64
	headerErr                  error

	readHook, decodeHook func(*core.Call) error
	encodeHook           func(*core.Result) error
	headerBuf            [160]byte // the answer's header values, one at a time
}

// prepare makes x's core call for an infer request for model and version
// (empty: the traffic policy's), which arrived at start: header looks up
// a request header, headerLength is its Inference-Header-Content-Length
// value, length the body's announced length (-1: unknown), read reads the
// body into the buffer it is given. The call's Read reads the body with
// read (only once the core has routed the call and found its version able
// to take it, so that a shed request's body is never read), its Decode
// decodes it, its tensors aliasing the body; its Encode makes the
// answer's bytes.
func (x *inference) prepare(model, version string, start time.Time, header func(string) string, headerLength []byte, length int64, read func(buf []byte) ([]byte, error)) *core.Call {
	if x.readHook == nil {
		x.readHook, x.decodeHook, x.encodeHook = x.readBody, x.decode, x.encode
	}
	x.read, x.answerHeader = read, -1
	x.headerLength, x.headerErr = protocol.ParseHeaderLength(headerLength)
	if x.headerErr == nil && length >= 0 && x.headerLength > length {
		x.headerErr = fmt.Errorf("%w: %s is %d but the body has %d bytes", protocol.ErrBadRequest, protocol.HeaderContentLength, x.headerLength, length)
	}
	var binary int64
	if x.headerErr == nil && x.headerLength >= 0 && length > x.headerLength {
		binary = length - x.headerLength
	}
	x.call = core.Call{
		Model: model, Version: version, Protocol: core.ProtoHTTP, Start: start, Header: header, BinaryBytes: binary,
		Read: x.readHook, Decode: x.decodeHook, Encode: x.encodeHook,
	}
	return &x.call
}

// readBody is the call's Read.
func (x *inference) readBody(*core.Call) error {
	if x.headerErr != nil {
		return x.headerErr // before a byte of the body is read
	}
	body, err := x.read(x.in)
	if err != nil {
		return err
	}
	x.in = body
	return nil
}

// decode is the call's Decode.
func (x *inference) decode(c *core.Call) (err error) {
	if x.req, err = x.dec.Decode(x.in, x.headerLength); err != nil {
		return err
	}
	return callOf(c, x.req)
}

// encode is the call's Encode.
func (x *inference) encode(res *core.Result) (err error) {
	if x.out == nil {
		x.out = make([]byte, 0, 4<<10)
	}
	responseOf(&x.resp, x.req, res)
	x.answer, x.answerHeader, err = x.resp.AppendTo(x.out[:0])
	x.out = x.answer
	return err
}

// finish gives the body's buffer back to budget and, when the call was
// answered (the answer has been copied or sent, and no one refers to its
// body: core.Infer), readies x for its next call, for its owner to pool.
// A call that failed must not be reused: its body and its call may still
// be read by the batch it was queued for, after it timed out. Buffers
// over maxPooledBody are given up, to the collector.
func (x *inference) finish(budget *bodyBudget, answered bool) {
	budget.give(x.held)
	x.held = 0
	if !answered {
		return
	}
	if cap(x.in) > maxPooledBody {
		x.in = nil
	}
	if cap(x.out) > maxPooledBody {
		x.out = nil
	}
	x.in, x.out = x.in[:0], x.out[:0]
	x.dec.Reset()
	x.req, x.answer, x.read = nil, nil, nil
	x.resp = protocol.InferResponse{Binary: x.resp.Binary[:0]}
	x.call = core.Call{}
}

// headers sets the answer's headers with set: the latency budget in
// Server-Timing, the batch size, the fallback and route taken, the
// content type and, for binary tensors, the JSON header's length. set
// must copy the value it is given.
func (x *inference) headers(res *core.Result, set func(name string, value []byte)) {
	if res.Draining {
		set("Connection", closeValue)
	}
	buf := x.headerBuf[:0]
	set("Server-Timing", res.Timing.AppendServerTiming(buf))
	set(BatchSizeHeader, strconv.AppendInt(buf[:0], int64(res.Timing.BatchSize), 10))
	if res.Via != "" {
		set(core.FallbackHeader, append(buf[:0], res.Via...))
	}
	if res.Route != "" {
		set(core.RouteHeader, append(buf[:0], res.Route...))
	}
	if x.answerHeader >= 0 {
		set("Content-Type", binaryType)
		set(protocol.HeaderContentLength, strconv.AppendInt(buf[:0], x.answerHeader, 10))
	} else {
		set("Content-Type", jsonType)
	}
}

// Header values the answers share.
var (
	closeValue = []byte("close")
	binaryType = []byte("application/octet-stream")
	jsonType   = []byte("application/json")
)

// setHeader is headers' setter for net/http's h.
func setHeader(h http.Header) func(name string, value []byte) {
	return func(name string, value []byte) { h.Set(name, string(value)) }
}

// serveInfer answers an infer call on net/http (Handler's mux).
func (s *API) serveInfer(w http.ResponseWriter, r *http.Request) {
	x := newInference()
	read := func(buf []byte) ([]byte, error) {
		return readBody(r.Body, r.ContentLength, s.opts.MaxBodyBytes, buf, s.bodies, &x.held)
	}
	call := x.prepare(r.PathValue("model"), r.PathValue("version"), time.Now(), r.Header.Get, []byte(r.Header.Get(protocol.HeaderContentLength)), r.ContentLength, read)
	res, err := s.Infer(r.Context(), call)
	if err != nil {
		x.finish(s.bodies, false)
		s.fail(w, err)
		return
	}
	h := w.Header()
	x.headers(res, setHeader(h))
	h.Set("Content-Length", strconv.Itoa(len(x.answer)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(x.answer)
	x.finish(s.bodies, true)
	inferences.Put(x)
}

// inferences pools the state of infer calls (*inference), with the
// buffers, decoder and call each holds.
var inferences = sync.Pool{New: func() any { return new(inference) }}

// newInference returns an inference from the pool, to prepare.
func newInference() *inference { return inferences.Get().(*inference) }

// maxPooledBody is the largest buffer an inference keeps for its next
// call, in bytes, so that one large request or answer does not pin its
// memory.
const maxPooledBody = 1 << 20

// callOf fills c from a decoded request: id, inputs, outputs wanted, and
// the timeout (in microseconds) and priority parameters.
func callOf(c *core.Call, req *protocol.InferRequest) error {
	c.Request.ID, c.Request.Inputs = req.ID, req.Inputs
	for _, o := range req.Outputs {
		c.Request.Outputs = append(c.Request.Outputs, o.Name)
		if o.Classes > 0 {
			if c.Classes == nil {
				c.Classes = map[string]int64{}
			}
			c.Classes[o.Name] = o.Classes
		}
	}
	timeoutUs, _, err := req.Parameters.Int(protocol.ParamTimeout)
	if err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrBadRequest, err)
	}
	priority, _, err := req.Parameters.Int(protocol.ParamPriority)
	if err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrBadRequest, err)
	}
	c.Timeout = time.Duration(timeoutUs) * time.Microsecond
	c.Request.Priority = int(priority)
	return nil
}

// responseOf sets resp to the response to req: the outputs res holds,
// each binary where req asked for it. It reuses resp.Binary's array.
func responseOf(resp *protocol.InferResponse, req *protocol.InferRequest, res *core.Result) {
	meta := res.Model.Metadata()
	binary := resp.Binary[:0]
	*resp = protocol.InferResponse{ModelName: meta.Name, ModelVersion: strconv.FormatInt(meta.Version, 10), ID: req.ID, Outputs: res.Outputs}
	if req.BinaryOutput || len(req.Outputs) > 0 {
		for i := range res.Outputs {
			binary = append(binary, req.BinaryOutput || i < len(req.Outputs) && req.Outputs[i].Binary)
		}
		resp.Binary = binary
	}
}
