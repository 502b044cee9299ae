package runner

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infer-serving/infer/pkg/tensor"
)

// A batch the runtime refuses because of one request's inputs (the faulty
// model's marked row: a Gather out of bounds, as a token id past the
// vocabulary gives) is run again request by request: the marked request
// fails alone and its four neighbours are answered, in a model host and in
// process alike. Every request of the batch used to fail with it, so that
// one client sending bad ids failed everyone else's requests.
func TestRefusedBatchFailsOnlyTheRequestRefused(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "faulty.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, isolation := range []string{IsolationProcess, IsolationNone} {
		t.Run(isolation, func(t *testing.T) {
			cfg := Config{MaxBatchSize: intp(5)}
			cfg.DynamicBatching.MaxQueueDelay = Duration(time.Minute) // the batch goes when full
			cfg.Warmup.Data = WarmupZero                              // clear of the marks
			m, err := LoadModel("faulty", 1, data, cfg, LoadOptions{Isolation: isolation})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			row := func(fail bool) tensor.Tensor {
				v := []float32{0.25, 0, 0, 0.5}
				if fail {
					v[1] = 1
				}
				b := make([]byte, 16)
				for i, x := range v {
					binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
				}
				return tensor.Tensor{Name: "x", DataType: tensor.FP32, Shape: []int64{1, 4}, Data: b}
			}
			resps := make([]*Response, 5)
			errs := make([]error, 5)
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Go(func() {
					resps[i], errs[i] = m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{row(i == 2)}})
				})
			}
			wg.Wait()
			for i := range 5 {
				if i == 2 {
					if errs[i] == nil || !strings.Contains(errs[i].Error(), "Gather") {
						t.Errorf("the marked request: %v, want the runtime's refusal", errs[i])
					}
					continue
				}
				if errs[i] != nil {
					t.Errorf("request %d failed with its batch: %v", i, errs[i])
					continue
				}
				y := resps[i].Outputs[0].Data
				if got := math.Float32frombits(binary.LittleEndian.Uint32(y[12:])); got != 1 {
					t.Errorf("request %d: y[3] = %v, want 1", i, got)
				}
			}
			// The batch of five ran once, then each of its requests alone.
			if s := m.Stats(); s.Executions != 5 || s.Success != 4 || s.Failure != 1 {
				t.Errorf("executions %d, success %d, failure %d; want 5 runs alone after the batch, 4 answered, 1 failed", s.Executions, s.Success, s.Failure)
			}
		})
	}
}

// A batch whose host was killed as hung is answered with the hang, not
// run again request by request: each run of a request that stalls would
// cost the execution timeout and a host, and a few in a row the version
// (its crash limit). One stalling request among three costs one host.
func TestHungBatchIsNotRunAgain(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "variants", "faulty.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{MaxBatchSize: intp(3)}
	cfg.DynamicBatching.MaxQueueDelay = Duration(time.Minute) // the batch goes when full
	cfg.Warmup.Data = WarmupZero
	cfg.Resources.ExecutionTimeout = Duration(300 * time.Millisecond)
	m, err := LoadModel("faulty", 1, data, cfg, LoadOptions{Isolation: IsolationProcess})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	row := func(stall float32) tensor.Tensor {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint32(b[8:], math.Float32bits(stall)) // column 2: thousands of loop iterations
		return tensor.Tensor{Name: "x", DataType: tensor.FP32, Shape: []int64{1, 4}, Data: b}
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			stall := float32(0)
			if i == 1 {
				stall = 5000 // seconds of work: past the execution timeout
			}
			_, errs[i] = m.Infer(context.Background(), &Request{Inputs: []tensor.Tensor{row(stall)}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "resources.execution_timeout") {
			t.Errorf("request %d: %v, want the hang named", i, err)
		}
	}
	if s := m.Stats(); s.HostCrashes != 1 {
		t.Errorf("%d hosts killed, want 1: the hung batch was run again", s.HostCrashes)
	}
}
