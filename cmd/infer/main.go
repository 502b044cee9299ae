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

	"github.com/infer-serving/infer/pkg/modelhost"
	"github.com/infer-serving/infer/pkg/runner"
)

func main() {
	// The hidden subcommand a model host is started with (see
	// pkg/modelhost): it serves one session for its parent and exits.
	if len(os.Args) == 2 && os.Args[1] == modelhost.HostArg && modelhost.IsHost() {
		os.Exit(runner.ServeHost())
	}
	// SIGHUP (a closed terminal, a supervisor's hang-up) ends a command as
	// SIGTERM does: infer serve drains, infer bench reports what it has.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		if !errors.Is(err, errSLO) { // the report and the missed objectives are printed already
			fmt.Fprintln(os.Stderr, "infer:", err)
		}
		os.Exit(1)
	}
}
