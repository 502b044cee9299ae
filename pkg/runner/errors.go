// Package runner executes ONNX models through ONNX Runtime: it loads single
// files and model repositories, keeps a pool of sessions per model version,
// and merges concurrent requests into batches as Triton's dynamic batcher
// does. It knows nothing of any wire protocol; front ends translate their
// requests into Request and back.
package runner

import "errors"

// Sentinel errors that callers branch on; front ends map each to one status
// code. Errors returned by the runner wrap one of them where it applies.
var (
	// ErrModelNotFound: no model (or version) of that name is loaded.
	ErrModelNotFound = errors.New("model not found")
	// ErrModelNotReady: the model exists but is loading, failed or unloading.
	ErrModelNotReady = errors.New("model not ready")
	// ErrInvalidInput: the request does not match the model's inputs.
	ErrInvalidInput = errors.New("invalid input")
	// ErrTooLarge: the request's inputs exceed the model's bound on one
	// request's bytes.
	ErrTooLarge = errors.New("request too large")
	// ErrQueueFull: the model's queue is at max_queue_size.
	ErrQueueFull = errors.New("queue full")
	// ErrDeadlineExceeded: the request's deadline passed before it ran.
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrClosed: the model is shutting down and accepts no new requests.
	ErrClosed = errors.New("model is shutting down")
	// ErrDeviceUnavailable: the configured execution provider cannot be used.
	ErrDeviceUnavailable = errors.New("device unavailable")
)
