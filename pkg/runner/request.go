package runner

import (
	"github.com/infer-serving/infer/pkg/profile"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Request is one inference request, as every front end hands it over.
type Request struct {
	// ID is echoed in the response.
	ID string
	// Inputs holds one tensor per model input, in any order. For batchable
	// models the first dimension is the request's own batch size.
	Inputs []tensor.Tensor
	// Outputs names the outputs wanted; empty means all.
	Outputs []string
	// Priority is the queue priority, 1 the highest; 0 means the model's
	// default_priority.
	Priority int
	// Header returns a request header (HTTP) or metadata value (gRPC) by
	// name, for a router's rules; nil when there are none.
	Header func(name string) string
	// Place is the place the caller took for the request (Model.Enter),
	// nil for none: the worker that answers the request's batch gives it
	// back before the caller is woken.
	Place *Place
}

// Response is the answer to one Request.
type Response struct {
	ModelName    string
	ModelVersion int64
	ID           string
	// Outputs hold exactly the request's own rows, in the order the request
	// named them (model order when it named none).
	Outputs []tensor.Tensor
	// Timing holds the queue and infer phases and the batch size the
	// request ran in.
	Timing profile.Timing
	// FromCache is true when the response cache answered without running
	// the model.
	FromCache bool
	// Route names the route a router took ("" for any other model): the
	// value of the Inference-Route response header.
	Route string
}
