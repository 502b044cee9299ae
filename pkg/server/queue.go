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
// Run it beside Serve, with the same context.
func (s *Server) ServeQueue(ctx context.Context, b queue.Broker, opts queueapi.Options) error {
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = s.opts.GracePeriod
	}
	return queueapi.New(s.Core, b, opts).Run(ctx)
}
