package runner

import (
	"context"
	"log/slog"

	"github.com/infer-serving/infer/pkg/lograte"
	ort "github.com/infer-serving/infer/third_party/onnxruntime_go"
)

// runtimeLog hands one of ONNX Runtime's log messages to the program's
// logger, as a record of the component "onnxruntime" at the matching
// level, rather than letting the runtime write it to stderr itself (with
// terminal colour codes, outside the log's format). The environment logs
// errors and worse: a kernel that failed, a provider that could not load.
func runtimeLog(level ort.LoggingLevel, category, location, message string) {
	l := slog.LevelError
	switch level {
	case ort.LoggingLevelVerbose:
		l = slog.LevelDebug
	case ort.LoggingLevelInfo:
		l = slog.LevelInfo
	case ort.LoggingLevelWarning:
		l = slog.LevelWarn
	}
	attrs := []any{"component", "onnxruntime", "category", category, "at", location}
	if l == slog.LevelError { // a kernel failing on a request's inputs: as often as requests come
		n, ok := runtimeErrors.Allow()
		if !ok {
			return
		}
		attrs = append(attrs, "unlogged_since", n)
	}
	slog.Default().Log(context.Background(), l, message, attrs...)
}

// runtimeErrors bounds the runtime's error lines to one a second.
var runtimeErrors lograte.Limiter
