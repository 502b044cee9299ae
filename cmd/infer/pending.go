package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notYet makes a command that exists in the CLI's shape but whose work is
// not built yet: it fails clearly instead of pretending.
func notYet(use, short, instead string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (not yet available)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%s is not yet available in this build; %s", cmd.CommandPath(), instead)
		},
	}
}

func newTopCmd() *cobra.Command {
	return notYet("top", "Live dashboard of latency, throughput, errors, queues and cost per model", "`infer models run` prints per-model timings")
}
