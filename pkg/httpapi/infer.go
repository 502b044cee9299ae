package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
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
	headerLength := int64(-1)
	call := &core.Call{
		Model: r.PathValue("model"), Version: r.PathValue("version"), Protocol: core.ProtoHTTP,
		Start: time.Now(), Header: r.Header.Get,
		Decode: func(c *core.Call) (err error) {
			if req, err = decodeHTTP(w, r, s.opts.MaxBodyBytes); err != nil {
				return err
			}
			return callOf(c, req)
		},
		Encode: func(res *core.Result) (err error) {
			body, headerLength, err = responseOf(req, res).Encode()
			return err
		},
	}
	res, err := s.Infer(r.Context(), call)
	if err != nil {
		s.fail(w, err)
		return
	}
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

// callOf fills c from a decoded request: id, inputs, outputs wanted, and
// the timeout (in microseconds) and priority parameters.
func callOf(c *core.Call, req *protocol.InferRequest) error {
	c.Request.ID, c.Request.Inputs = req.ID, req.Inputs
	for _, o := range req.Outputs {
		c.Request.Outputs = append(c.Request.Outputs, o.Name)
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
