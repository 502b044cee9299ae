// Command infer serves ONNX models over the Open Inference Protocol and
// measures inference servers: see `infer --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		if !errors.Is(err, errSLO) { // the report and the missed objectives are printed already
			fmt.Fprintln(os.Stderr, "infer:", err)
		}
		os.Exit(1)
	}
}
