package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/runner"
)

// listServerModels prints the model versions a running server knows,
// from its repository index: state, reason, loaded memory and last use.
func listServerModels(ctx context.Context, server string, w io.Writer, out *outputFlag) error {
	u, err := serverURL("--server", server)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	idx, err := (&deploy.Client{Base: u.String()}).Index(ctx)
	if err != nil {
		return fmt.Errorf("repository index of %s: %w", u, err)
	}
	rows := make([]modelListing, 0, len(idx))
	for _, e := range idx {
		v, err := strconv.ParseInt(e.Version, 10, 64)
		if err != nil {
			return fmt.Errorf("repository index of %s: model %q has version %q, want a number", u, e.Name, e.Version)
		}
		rows = append(rows, modelListing{Name: e.Name, Version: v, State: e.State, Reason: e.Reason, LoadedBytes: e.LoadedBytes, LastUsed: e.LastUse()})
	}
	now := time.Now()
	return out.write(w, rows, func(w io.Writer) error { return serverListText(w, rows, now) })
}

// serverListText prints one row a model version of a server: what the
// repository index tells, the memory of each loaded version and how
// long ago each was last used.
func serverListText(w io.Writer, rows []modelListing, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATE\tMEMORY\tLAST USED\tREASON")
	for _, l := range rows {
		used := "-"
		if !l.LastUsed.IsZero() {
			used = now.Sub(l.LastUsed).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Name, l.Version, l.State, memory(l.LoadedBytes), used, l.Reason)
	}
	return tw.Flush()
}

// memory is a loaded version's memory for a table: "-" when unloaded.
func memory(bytes int64) string {
	if bytes <= 0 {
		return "-"
	}
	return runner.FormatBytes(bytes)
}
