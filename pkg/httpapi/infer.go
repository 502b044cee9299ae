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
// decoded request, the pooled buffers of its body and its answer, and the
// length of the answer's JSON header when it carries binary tensors.
type inference struct {
	req          *protocol.InferRequest
	answer       []byte
	in, out      *[]byte
	headerLength int64
	held         int64 // bytes of the body's buffer charged to the API's budget
}

// call returns the core call of an infer request for model and version
// (empty: the traffic policy's), which arrived at start. Its Read reads
// the body with read (only once the core has routed the call and found
// its version able to take it, so that a shed request's body is never
// read), its Decode decodes it, its tensors aliasing the body; its Encode
// makes the answer's bytes. header looks up a request
// header; length is the body's announced length (-1: unknown).
func (x *inference) call(model, version string, start time.Time, header func(string) string, length int64, read func(buf []byte) ([]byte, error)) *core.Call {
	x.headerLength = -1
	headerLength, headerErr := protocol.ParseHeaderLength(header(protocol.HeaderContentLength))
	if headerErr == nil && length >= 0 && headerLength > length {
		headerErr = fmt.Errorf("%w: %s is %d but the body has %d bytes", protocol.ErrBadRequest, protocol.HeaderContentLength, headerLength, length)
	}
	var binary int64
	if headerErr == nil && headerLength >= 0 && length > headerLength {
		binary = length - headerLength
	}
	return &core.Call{
		Model: model, Version: version, Protocol: core.ProtoHTTP, Start: start, Header: header, BinaryBytes: binary,
		Read: func(*core.Call) error {
			if headerErr != nil {
				return headerErr // before a byte of the body is read
			}
			x.in = bodyBuffers.Get().(*[]byte)
			body, err := read(*x.in)
			if err != nil {
				return err
			}
			*x.in = body
			return nil
		},
		Decode: func(c *core.Call) (err error) {
			if x.req, err = protocol.DecodeRequest(*x.in, headerLength); err != nil {
				return err
			}
			return callOf(c, x.req)
		},
		Encode: func(res *core.Result) (err error) {
			buf := responseBuffers.Get().(*[]byte)
			x.answer, x.headerLength, err = responseOf(x.req, res).AppendTo((*buf)[:0])
			*buf = x.answer
			if err != nil {
				putBuffer(&responseBuffers, buf, maxPooledBody)
			} else {
				x.out = buf
			}
			return err
		},
	}
}

// release pools the call's buffers again, once it is answered: no one
// refers to its body (core.Infer) and the answer has been copied or sent.
// A call that failed keeps its body out of the pool: it may have timed
// out in its queue and still be read by the batch it waited for.
func (x *inference) release() {
	putBuffer(&bodyBuffers, x.in, maxPooledBody)
	putBuffer(&responseBuffers, x.out, maxPooledBody)
}

// headers sets the answer's headers with set: the latency budget in
// Server-Timing, the batch size, the fallback and route taken, the
// content type and, for binary tensors, the JSON header's length.
func (x *inference) headers(res *core.Result, set func(name, value string)) {
	if res.Draining {
		set("Connection", "close")
	}
	var timing [160]byte
	set("Server-Timing", string(res.Timing.AppendServerTiming(timing[:0])))
	set(BatchSizeHeader, strconv.Itoa(res.Timing.BatchSize))
	if res.Via != "" {
		set(core.FallbackHeader, res.Via)
	}
	if res.Route != "" {
		set(core.RouteHeader, res.Route)
	}
	if x.headerLength >= 0 {
		set("Content-Type", "application/octet-stream")
		set(protocol.HeaderContentLength, strconv.FormatInt(x.headerLength, 10))
	} else {
		set("Content-Type", "application/json")
	}
}

// serveInfer answers an infer call on net/http (Handler's mux).
func (s *API) serveInfer(w http.ResponseWriter, r *http.Request) {
	var x inference
	read := func(buf []byte) ([]byte, error) {
		return readBody(r.Body, r.ContentLength, s.opts.MaxBodyBytes, buf, s.bodies, &x.held)
	}
	defer func() { s.bodies.give(x.held) }()
	res, err := s.Infer(r.Context(), x.call(r.PathValue("model"), r.PathValue("version"), time.Now(), r.Header.Get, r.ContentLength, read))
	if err != nil {
		s.fail(w, err)
		return
	}
	defer x.release()
	h := w.Header()
	x.headers(res, h.Set)
	h.Set("Content-Length", strconv.Itoa(len(x.answer)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(x.answer)
}

// bodyBuffers and responseBuffers hold the buffers request bodies are
// read into and responses encoded into, as *[]byte.
var (
	bodyBuffers     = sync.Pool{New: func() any { return new([]byte) }}
	responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
)

// maxPooledBody is the largest buffer kept for reuse, in bytes, so that
// one large request or answer does not pin its memory.
const maxPooledBody = 1 << 20

// putBuffer returns b, when it is one and not over limit bytes, to pool.
func putBuffer(pool *sync.Pool, b *[]byte, limit int) {
	if b != nil && cap(*b) <= limit {
		*b = (*b)[:0]
		pool.Put(b)
	}
}

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

// responseOf is the response to req: the outputs res holds, each binary
// where req asked for it.
func responseOf(req *protocol.InferRequest, res *core.Result) *protocol.InferResponse {
	meta := res.Model.Metadata()
	resp := &protocol.InferResponse{ModelName: meta.Name, ModelVersion: strconv.FormatInt(meta.Version, 10), ID: req.ID, Outputs: res.Outputs}
	if req.BinaryOutput || len(req.Outputs) > 0 {
		resp.Binary = make([]bool, len(res.Outputs))
		for i := range resp.Binary {
			resp.Binary[i] = req.BinaryOutput || i < len(req.Outputs) && req.Outputs[i].Binary
		}
	}
	return resp
}
