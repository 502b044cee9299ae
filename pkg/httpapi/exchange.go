package httpapi

import (
	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
)

// CallOf fills c from a decoded infer request as the HTTP front end does
// (id, inputs, outputs wanted, the timeout in microseconds and priority
// parameters), for front ends whose bodies are HTTP's: the queue's.
func CallOf(c *core.Call, req *protocol.InferRequest) error { return callOf(c, req) }

// ResponseOf is the response HTTP answers req with, given its result:
// front ends that answer HTTP's bytes encode it.
func ResponseOf(req *protocol.InferRequest, res *core.Result) *protocol.InferResponse {
	resp := new(protocol.InferResponse)
	responseOf(resp, req, res)
	return resp
}
