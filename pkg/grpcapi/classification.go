package grpcapi

import (
	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
)

// classesOf notes in c the classification a requested output's
// parameters ask for: Triton's clients send it as an int64_param named
// "classification" (the class_count alias is taken too).
func classesOf(c *core.Call, o *inferencepb.ModelInferRequest_InferRequestedOutputTensor) error {
	var n int64
	for _, name := range []string{protocol.ParamClassification, protocol.ParamClassCount} {
		p, ok := o.GetParameters()[name]
		if !ok {
			continue
		}
		v, isInt := intParam(p)
		if !isInt || v < 0 {
			return badRequest("output %q: parameter %q: want a non-negative integer", o.GetName(), name)
		}
		if n != 0 && v != 0 && v != n {
			return badRequest("output %q: parameters %q and %q disagree", o.GetName(), protocol.ParamClassification, protocol.ParamClassCount)
		}
		n = max(n, v)
	}
	if n > 0 {
		if c.Classes == nil {
			c.Classes = map[string]int64{}
		}
		c.Classes[o.GetName()] = n
	}
	return nil
}
