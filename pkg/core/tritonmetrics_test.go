package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Each way a request fails counts under the reason Triton gives it.
func TestTritonFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{runner.ErrQueueFull, "REJECTED"},
		{fmt.Errorf("queued: %w", runner.ErrDeadlineExceeded), "REJECTED"},
		{context.DeadlineExceeded, "REJECTED"},
		{context.Canceled, "CANCELED"},
		{errors.New("onnxruntime: Non-zero status code returned while running Gemm node"), "BACKEND"},
		{fmt.Errorf("%w: image: want 784 columns", protocol.ErrBadRequest), "OTHER"},
		{runner.ErrModelNotReady, "OTHER"},
		{runner.ErrModelNotFound, "OTHER"},
	} {
		if got := tritonReasons[tritonReason(outcome(tc.err))]; got != tc.want {
			t.Errorf("%v (outcome %s): reason %s, want %s", tc.err, outcome(tc.err), got, tc.want)
		}
	}
}

func TestParseMetricsCompat(t *testing.T) {
	for name, want := range map[string]MetricsCompat{"": MetricsCompatNone, "none": MetricsCompatNone, "triton": MetricsCompatTriton} {
		if got, err := ParseMetricsCompat(name); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", name, got, err, want)
		}
	}
	if _, err := ParseMetricsCompat("Triton "); err == nil || !strings.Contains(err.Error(), `"Triton "`) || !strings.Contains(err.Error(), "want triton or none") {
		t.Errorf("unknown compatibility: %v, want an error naming it and the choices", err)
	}
	if _, err := New(nil, Options{MetricsCompat: "vllm"}); err == nil || !strings.Contains(err.Error(), `"vllm"`) {
		t.Errorf("New with an unknown compatibility: %v, want an error naming it", err)
	}
}
