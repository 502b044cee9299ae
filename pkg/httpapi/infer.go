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

// serveInfer is the hot path: a call whose Decode reads the body (only
// once the core has admitted it, so that a shed request's body is never
// read) and whose Encode makes the response's bytes, written here with
// the latency budget in Server-Timing.
func (s *API) serveInfer(w http.ResponseWriter, r *http.Request) {
	var req *protocol.InferRequest
	var body []byte
	var in, out *[]byte // the pooled buffers of the request's and the response's bodies
	headerLength := int64(-1)
	call := &core.Call{
		Model: r.PathValue("model"), Version: r.PathValue("version"), Protocol: core.ProtoHTTP,
		Start: time.Now(), Header: r.Header.Get,
		Decode: func(c *core.Call) (err error) {
			in = bodyBuffers.Get().(*[]byte)
			req, *in, err = decodeHTTP(w, r, s.opts.MaxBodyBytes, *in)
			if err != nil {
				return err
			}
			return callOf(c, req)
		},
		Encode: func(res *core.Result) (err error) {
			buf := responseBuffers.Get().(*[]byte)
			body, headerLength, err = responseOf(req, res).AppendTo((*buf)[:0])
			*buf = body
			if err != nil {
				putBuffer(&responseBuffers, buf, maxPooledBody)
			} else {
				out = buf
			}
			return err
		},
	}
	res, err := s.Infer(r.Context(), call)
	if err != nil {
		// The body is not pooled again: a call that failed (timed out in
		// its queue) may still be read by the batch it waited for.
		s.fail(w, err)
		return
	}
	defer putBuffer(&bodyBuffers, in, maxPooledBody)      // answered: no one refers to the body (core.Infer)
	defer putBuffer(&responseBuffers, out, maxPooledBody) // w.Write has copied the body, or sent it
	h := w.Header()
	if res.Draining {
		h.Set("Connection", "close")
	}
	h.Set("Server-Timing", string(res.Timing.AppendServerTiming(make([]byte, 0, 128))))
	h.Set(BatchSizeHeader, strconv.Itoa(res.Timing.BatchSize))
	if res.Via != "" {
		h.Set(core.FallbackHeader, res.Via)
	}
	if res.Route != "" {
		h.Set(core.RouteHeader, res.Route)
	}
	if headerLength >= 0 {
		h.Set("Content-Type", "application/octet-stream")
		h.Set(protocol.HeaderContentLength, strconv.FormatInt(headerLength, 10))
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
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
