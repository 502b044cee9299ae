package core

import (
	"context"
	"errors"
	"net/http"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// StatusClientClosed answers a request its client gave up on: nobody reads
// it, but it is logged and counted apart from the server's own failures.
const StatusClientClosed = 499

// ErrBodyTimeout answers a request whose body did not arrive within the
// front end's read timeout; it maps to 408.
var ErrBodyTimeout = errors.New("request body not received in time")

// ErrBodyBudget refuses a request body the server has no memory budget
// left for: the bodies it holds already reach its bound (503, retry).
var ErrBodyBudget = errors.New("server busy: request bodies in memory at the limit")

// Status maps an error to its status code, once for every endpoint, as
// Triton does: 400 malformed input, 404 unknown model or version, 408 body
// not received within the read timeout, 413 body too large, 429 queue
// full, 499 client gone, 503 not ready or draining, 504 deadline exceeded,
// 500 anything else. A load refused for the memory budget is a 503 with
// Retry-After (see RetryAfter).
func Status(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, protocol.ErrBadRequest), errors.Is(err, runner.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.As(err, &tooLarge), errors.Is(err, runner.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, runner.ErrModelNotFound):
		return http.StatusNotFound
	case errors.Is(err, runner.ErrQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, runner.ErrModelNotReady), errors.Is(err, runner.ErrClosed), errors.Is(err, errCircuitOpen),
		errors.Is(err, runner.ErrMemoryBudget), errors.Is(err, ErrBodyBudget):
		return http.StatusServiceUnavailable
	case errors.Is(err, runner.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return StatusClientClosed
	}
	return http.StatusInternalServerError
}

// outcome is the metrics label for an error (nil: "success").
func outcome(err error) string {
	if err == nil {
		return "success"
	}
	switch Status(err) {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestTimeout:
		return "invalid"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "queue_full"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	case StatusClientClosed:
		return "canceled"
	}
	return "error"
}
