package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/infer-serving/infer/pkg/lograte"
	"github.com/infer-serving/infer/pkg/tensor"
)

// lockedBuffer is a log destination the runtime's threads may write to
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A kernel that fails is logged by the runtime; the message reaches the
// program's log as a record of its own, without terminal colour codes,
// from a session in process and from one in a model host, whose log
// lines the parent passes on to its stderr.
func TestRuntimeLogsGoThroughSlog(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(faults, "expand.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 4)
	binary.LittleEndian.PutUint32(value, math.Float32bits(1))
	shape := make([]byte, 16)
	binary.LittleEndian.PutUint64(shape, 2)
	binary.LittleEndian.PutUint64(shape[8:], uint64(0xFFFFFFFFFFFFFFFD)) // -3: no shape broadcasts to it
	req := &Request{Inputs: []tensor.Tensor{
		{Name: "value", DataType: tensor.FP32, Shape: []int64{1}, Data: value},
		{Name: "shape", DataType: tensor.Int64, Shape: []int64{2}, Data: shape}}}

	for _, isolation := range []string{IsolationNone, IsolationProcess} {
		t.Run(isolation, func(t *testing.T) {
			// In process the runtime logs to slog's default; a host's
			// lines go to the stderr its parent had when it started it.
			runtimeErrors = lograte.Limiter{} // another test's runtime errors may have spent this second's line
			var logged lockedBuffer
			was := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
			defer slog.SetDefault(was)
			stderr, err := os.CreateTemp(t.TempDir(), "stderr")
			if err != nil {
				t.Fatal(err)
			}
			wasStderr := os.Stderr
			os.Stderr = stderr
			m, err := LoadModel("expand", 1, data, Config{}, LoadOptions{Isolation: isolation})
			os.Stderr = wasStderr
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Infer(context.Background(), req); err == nil {
				t.Fatal("Expand to a negative dimension succeeded")
			}
			m.Close() // a host's lines are all passed on once it has exited
			hosted, err := os.ReadFile(stderr.Name())
			if err != nil {
				t.Fatal(err)
			}
			out := logged.String() + string(hosted)
			if !strings.Contains(out, "component=onnxruntime") || !strings.Contains(out, "level=ERROR") || strings.Contains(out, "\x1b[") {
				t.Fatalf("the runtime's log, want an ERROR record of component onnxruntime without colour codes:\n%q", out)
			}
		})
	}
}
