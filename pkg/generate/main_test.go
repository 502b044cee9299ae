package generate

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/infer-serving/infer/pkg/runner"
)

// bundled is the repository of the bundled models, relative to this package.
var bundled = filepath.Join("..", "..", "testdata", "models")

func TestMain(m *testing.M) {
	runner.ServeHostIfChild() // a hosted decoder's model host is this binary
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if _, err := runner.InitRuntime(""); err != nil {
		fmt.Fprintln(os.Stderr, "generate tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m) // no goroutine outlives its owner
}
