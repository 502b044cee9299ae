package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// checkModels validates --models and --zipf: several models are an Open
// Inference Protocol load, named instead of -m.
func (o benchOptions) checkModels() error {
	if len(o.models) == 0 {
		return nil
	}
	if o.model != "" {
		return fmt.Errorf("-m %s and --models name the models twice: give one (--models takes one name too)", o.model)
	}
	switch o.protocol {
	case loadgen.ProtoHTTPBinary, loadgen.ProtoHTTPJSON, loadgen.ProtoGRPC:
	default:
		return fmt.Errorf("--models sends Open Inference Protocol requests: use --protocol %s, %s or %s, not %s", loadgen.ProtoHTTPBinary, loadgen.ProtoHTTPJSON, loadgen.ProtoGRPC, o.protocol)
	}
	if o.zipf < 0 || math.IsNaN(o.zipf) || math.IsInf(o.zipf, 0) {
		return fmt.Errorf("--zipf %v: want 0 (uniform) or more, such as 1.1", o.zipf)
	}
	if o.inputData != "" {
		return errors.New("--input-data holds one model's requests: it cannot feed --models")
	}
	return nil
}

// setupTimeout bounds reading the server's metadata before a run: longer
// for --models, whose every model's metadata is read, and on a server
// that loads models on demand each read may wait for a load.
func (o benchOptions) setupTimeout() time.Duration {
	if len(o.models) > 0 {
		return 5 * time.Minute
	}
	return 30 * time.Second
}
