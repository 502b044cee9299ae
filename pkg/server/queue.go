package server

import (
	"context"

	"github.com/infer-serving/infer/pkg/queue"
	"github.com/infer-serving/infer/pkg/queueapi"
)

// ServeQueue consumes inference requests from b (NATS JetStream or Redis
// Streams) into the server's core until ctx ends, then stops fetching and
// answers what it holds within the grace period (Options.GracePeriod),
// handing back to the broker, unacknowledged, whatever is unanswered.
// Bodies over the server's MaxBodyBytes are answered 413, and four times
// it bounds the bodies each model's consumer holds. Run it beside Serve,
// with the same context.
func (s *Server) ServeQueue(ctx context.Context, b queue.Broker, opts queueapi.Options) error {
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = s.opts.GracePeriod
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = s.opts.MaxBodyBytes
	}
	return queueapi.New(s.Core, b, opts).Run(ctx)
}
