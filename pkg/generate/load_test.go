package generate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

// A text generator's decoder host is held to the version's load timeout
// (a server's --model-load-timeout), as every other model's host is: it
// was given two minutes whatever the timeout, holding a server's start.
func TestGeneratorLoadKeepsTheLoadTimeout(t *testing.T) {
	dir := filepath.Join(bundled, "tiny-gpt")
	f, err := os.Open(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := runner.ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = runner.LoadModel("tiny-gpt", 1, data, cfg, runner.LoadOptions{Isolation: runner.IsolationProcess, LoadTimeout: time.Millisecond,
		ReadFile: func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }})
	if err == nil || !strings.Contains(err.Error(), "within 1ms") {
		t.Fatalf("err %v, want the load timeout of 1ms named", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the timed-out load took %v", took)
	}
}
