package grpcapi

import (
	"fmt"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/protocol"
)

// classesOf notes in c the classification a requested output's
// parameters ask for: Triton's clients send it as an int64_param named
// "classification" (the class_count alias is taken too).
func classesOf(c *core.Call, output string, params []parameter) error {
	var n int64
	for _, p := range params {
		if p.name != protocol.ParamClassification && p.name != protocol.ParamClassCount {
			continue
		}
		v, err := p.count(fmt.Sprintf("output %q: parameter %q", output, p.name), "")
		if err != nil {
			return err
		}
		if n != 0 && v != 0 && v != n {
			return badRequest("output %q: parameters %q and %q disagree", output, protocol.ParamClassification, protocol.ParamClassCount)
		}
		n = max(n, v)
	}
	if n > 0 {
		if c.Classes == nil {
			c.Classes = map[string]int64{}
		}
		c.Classes[output] = n
	}
	return nil
}
