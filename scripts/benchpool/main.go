// Command benchpool prints the latency percentiles of several models'
// requests together, pooled exactly from the histograms of a report that
// infer bench --models -o json wrote (loadgen.PooledLatency).
//
// Usage: go run ./scripts/benchpool REPORT.json MODEL...
//
// It prints one line: the requests pooled, then p50, p99 and max in
// milliseconds.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/infer-serving/infer/pkg/loadgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchpool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: benchpool REPORT.json MODEL...")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var report loadgen.Report
	if err := json.Unmarshal(data, &report); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	p, err := loadgen.PooledLatency(report.Models, args[1:]...)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	var n int64
	for _, m := range report.Models {
		for _, name := range args[1:] {
			if m.Model == name {
				n += m.Requests
			}
		}
	}
	fmt.Printf("%d %.3f %.3f %.3f\n", n, p.P50, p.P99, p.Max)
	return nil
}
