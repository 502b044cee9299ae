package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/drift"
	"github.com/infer-serving/infer/pkg/runner"
)

func newMonitorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Quality monitoring: baselines of a model's inputs and outputs, samples for review",
		Long: `Quality monitoring: capture a baseline of a model's inputs and outputs,
and read the samples the server keeps for review.`,
	}
	cmd.AddCommand(newMonitorBaselineCmd(), newMonitorSamplesCmd())
	return cmd
}

func newMonitorBaselineCmd() *cobra.Command {
	var (
		server, model, out string
		version            int64
		duration           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "Capture a reference window of a served model's inputs and outputs into a baseline file",
		Long: `Wait for --duration while the server's quality monitor summarises the
requests it samples, then write those statistics as a baseline file. Put it
in the model's folder as ` + runner.BaselineFile + ` and each version loaded from
then on compares every window with it. The model's config.yaml must sample
requests (monitor.sample, such as 0.1).`,
		Example: `  infer monitor baseline --server http://localhost:8000 --model mlp --duration 10m --out models/mlp/baseline.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if model == "" {
				return fmt.Errorf("--model: name the model to capture")
			}
			if duration <= 0 {
				return fmt.Errorf("--duration %v: want a positive duration, such as 10m", duration)
			}
			s, err := drift.Capture(cmd.Context(), &http.Client{Timeout: duration + time.Minute}, server, model, version, duration)
			if err != nil {
				return err
			}
			if s.Requests == 0 {
				return fmt.Errorf("no request of model %q was sampled in %v: send traffic while capturing, or raise monitor.sample", model, duration)
			}
			if out == "" || out == "-" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(s)
			}
			if err := s.WriteFile(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "baseline of %s version %d: %d sampled requests from %s to %s, written to %s\n",
				s.Model, s.Version, s.Requests, s.Start.Format(time.TimeOnly), s.End.Format(time.TimeOnly), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", defaultServer, "the server's URL")
	f.StringVarP(&model, "model", "m", "", "the model to capture")
	f.Int64Var(&version, "model-version", 0, "the version to capture (0: the one answering unversioned requests)")
	f.Int64Var(&version, "version", 0, "the same as --model-version")
	_ = f.MarkDeprecated("version", "use --model-version")
	f.DurationVarP(&duration, "duration", "d", 10*time.Minute, "how long to capture")
	f.StringVar(&out, "out", "", "the file to write the baseline to (default: standard output)")
	return cmd
}

func newMonitorSamplesCmd() *cobra.Command {
	var (
		stateDir, model string
		version         int64
		limit           int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "samples",
		Short: "Print the request/response pairs a server kept for review",
		Long: `Print the samples a monitored model version kept under the server's
--state-dir: a uniform sample of each window's sampled requests, inputs
redacted as monitor.samples.drop and hash say. -o json prints them as JSON
lines, to export.`,
		Example: `  infer monitor samples --state-dir /var/lib/infer -m mlp --model-version 2 --limit 20
  infer monitor samples --state-dir /var/lib/infer -m mlp -o json > review.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" || model == "" {
				return fmt.Errorf("--state-dir and --model: name the server's state folder and the model")
			}
			if version < 1 {
				return fmt.Errorf("--model-version %d: name the version (1 or more)", version)
			}
			recs, err := drift.ReadSamples(drift.SampleDir(stateDir, model, version), limit)
			if err != nil {
				return fmt.Errorf("samples of %s version %d: %w (is monitor.sample set, and did the server run with this --state-dir?)", model, version, err)
			}
			return printSamples(cmd.OutOrStdout(), recs, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", "", "the server's --state-dir")
	f.StringVarP(&model, "model", "m", "", "the model")
	f.Int64Var(&version, "model-version", 1, "the version")
	f.Int64Var(&version, "version", 1, "the same as --model-version")
	_ = f.MarkDeprecated("version", "use --model-version")
	f.IntVar(&limit, "limit", 0, "print only the latest N samples (0: all)")
	output := addOutputFlag(cmd, false, "json: one JSON line a sample, to export", formatText, formatJSON)
	f.BoolVar(&asJSON, "json", false, "the same as -o json")
	_ = f.MarkDeprecated("json", "use -o json")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		asJSON = asJSON || output.is(formatJSON)
		return output.check()
	}
	return cmd
}

// printSamples writes records as JSON lines, or one block each: time, id,
// and each tensor with its first values.
func printSamples(w io.Writer, recs []drift.Record, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range recs {
		fmt.Fprintf(w, "%s  %s v%d  id=%q\n", r.Time.Format(time.RFC3339Nano), r.Model, r.Version, r.ID)
		for _, group := range []struct {
			role string
			ts   []drift.RecordTensor
		}{{"in ", r.Inputs}, {"out", r.Outputs}} {
			for _, t := range group.ts {
				fmt.Fprintf(w, "  %s %s %s %v  %s\n", group.role, t.Name, t.DataType, t.Shape, firstValues(t))
			}
		}
	}
	return nil
}

// firstValues shows a tensor's first 8 values, or its hash.
func firstValues(t drift.RecordTensor) string {
	if t.SHA256 != "" {
		return "sha256:" + t.SHA256
	}
	var parts []string
	for i, v := range t.Data {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("… (%d values)", len(t.Data)))
			break
		}
		parts = append(parts, fmt.Sprint(v))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
