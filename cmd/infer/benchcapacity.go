package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// capacity runs a sweep, one row per rate, or searches for the highest
// rate meeting the objectives (--find-max).
func capacity(ctx context.Context, bench *loadgen.Bench, o benchOptions, rates []float64, objectives []loadgen.Objective, stdout, stderr io.Writer) error {
	row := func(r loadgen.Report) {
		met := "yes"
		if !loadgen.Sustained(r, objectives) {
			met = "no"
		}
		fmt.Fprintf(stderr, "  target %8.1f/s  achieved %8.1f/s  p50 %8.3fms  p99 %8.3fms  errors %5.2f%%%s  sustained %s\n",
			r.TargetRate, r.AchievedRate, r.Latency.P50, r.Latency.P99, 100*r.ErrorRate, r.ErrorKinds(), met)
	}
	const tolerance = 0.05
	probe := o.warmup + o.duration
	if o.findMax {
		bisect, most := loadgen.FindMaxProbes(o.qps, o.maxQPS, tolerance)
		howLong := fmt.Sprintf("it doubles from %.0f/s until a probe fails, then bisects in %d more probes: (doublings + %d) × %v; --max-qps bounds it", o.qps, bisect, bisect, probe)
		if most > 0 {
			howLong = fmt.Sprintf("at most %d probes up to --max-qps %.0f/s: at most %v", most, o.maxQPS, time.Duration(most)*probe)
		}
		fmt.Fprintf(stderr, "infer bench: searching for the highest rate meeting %s, %v a probe; %s\n", o.slo, probe, howLong)
	} else {
		fmt.Fprintf(stderr, "infer bench: sweeping %d rates, %v each: about %v\n", len(rates), probe, time.Duration(len(rates))*probe)
	}
	steps, best, err := bench.Capacity(ctx, loadgen.CapacityOptions{Rates: rates, FindMax: o.findMax, Start: o.qps, Max: o.maxQPS,
		Tolerance: tolerance, Objectives: objectives, Step: row})
	if err != nil {
		return err
	}
	if err := writeCSV(o.csvFile, steps); err != nil {
		return err
	}
	if !o.out.is(formatText) {
		return o.out.write(stdout, struct {
			Steps        []loadgen.Report `json:"steps"`
			MaxSustained float64          `json:"max_sustained_rate"`
		}{steps, best}, nil)
	}
	fmt.Fprintf(stdout, "%-12s %12s %10s %10s %10s %8s %10s\n", "target/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "sustained")
	for _, r := range steps {
		met := "yes"
		if !loadgen.Sustained(r, objectives) {
			met = "no"
		}
		fmt.Fprintf(stdout, "%-12.1f %12.1f %10.3f %10.3f %10.3f %7.2f%% %10s\n", r.TargetRate, r.AchievedRate, r.Latency.P50, r.Latency.P99, r.Latency.P999, 100*r.ErrorRate, met)
	}
	fmt.Fprintf(stdout, "highest rate sustained: %.1f/s\n", best)
	return nil
}

func writeCSV(path string, reports []loadgen.Report) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--csv: %w", err)
	}
	if err := loadgen.WriteCSV(f, reports); err != nil {
		f.Close()
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	return f.Close()
}
