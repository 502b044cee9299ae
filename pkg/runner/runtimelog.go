package runner

import (
	"context"
	"log/slog"

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
	slog.Default().Log(context.Background(), l, message, "component", "onnxruntime", "category", category, "at", location)
}
