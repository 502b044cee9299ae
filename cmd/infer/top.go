package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/monitor"
	"github.com/infer-serving/infer/pkg/tui"
)

type topOptions struct {
	servers        []string
	metricsPort    int
	interval       time.Duration
	window         time.Duration
	history        time.Duration
	slo            string
	pricePerHour   float64
	adminTokenFile string
	adminPort      int
	plain          bool
	count          int
	width          int
	out            *outputFlag
}

func newTopCmd() *cobra.Command {
	o := topOptions{}
	cmd := &cobra.Command{
		Use:   "top [URL...]",
		Short: "Live dashboard of latency, throughput, errors, queues, rollouts and cost per model",
		Long: `Watch running servers: per model version, requests/s, p50/p95/p99 over a
sliding window (from histogram deltas between scrapes, not lifetime totals),
error rate, queue length and oldest request, mean batch size, in-flight
requests, cache hit rate, cost per 1,000 requests, sparklines of throughput
and p99, the latency budget, the rollout in progress, and, for versions
whose quality is monitored, the sampling and the drift of the last window
against the baseline (alarm, and each test's largest score with its
feature).

Keys: q quit, ? help, tab switch panel, arrows or j/k select, enter detail,
/ filter by name, p pause.

Without a terminal (or with --plain) it prints a plain-text snapshot every
interval instead; with -o json, one JSON object a line (the figures of each
model version, null where not known yet, latencies in seconds; rollouts; and
why any server could not be read).`,
		Example: `  infer top
  infer top http://10.0.0.5:8000 http://10.0.0.6:8000 --slo 'p99<50ms,errors<1%'
  infer top --plain --count 3 --price-per-hour 2.50
  infer top -o json --count 1 | jq '.models[] | {model, p99_seconds}'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Servers may be given as arguments too, as infer bench takes
			// its URL.
			if len(args) > 0 {
				if cmd.Flags().Changed("server") {
					o.servers = append(o.servers, args...)
				} else {
					o.servers = args
				}
			}
			return runTop(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.servers, "server", []string{defaultServer}, "the URL of a server to watch (repeat for several)")
	f.IntVar(&o.metricsPort, "metrics-port", 0, "port of each server's /metrics on the server's host, for a server that serves them only on a port of their own (default: the server URL's own port, where infer serve answers /metrics too)")
	f.IntVar(&o.adminPort, "admin-port", DefaultAdminPort, "port of each server's admin API, where rollouts are read, on the server's host (0: the server URL's own port)")
	f.DurationVar(&o.interval, "interval", time.Second, "time between scrapes")
	f.DurationVar(&o.window, "window", monitor.DefaultWindow, "span of the rates and percentiles")
	f.DurationVar(&o.history, "history", monitor.DefaultHistory, "span of the sparklines")
	f.StringVar(&o.slo, "slo", "", "objectives that colour the figures, such as 'p99<50ms,errors<1%'")
	f.Float64Var(&o.pricePerHour, "price-per-hour", 0, "US dollars an hour per server, split over its models by busy time (models priced in their config keep their own price)")
	f.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the servers' admin token, to read rollouts (or $"+adminTokenEnv+")")
	f.BoolVar(&o.plain, "plain", false, "print plain-text snapshots even on a terminal")
	f.IntVar(&o.count, "count", 0, "with plain or JSON snapshots, stop after this many (0: until interrupted)")
	f.IntVar(&o.width, "width", 120, "width of plain snapshots, in columns")
	o.out = addOutputFlag(cmd, false, "json: one snapshot a line, every interval", formatText, formatJSON)
	return cmd
}

func runTop(ctx context.Context, o topOptions, stdout io.Writer) error {
	if o.interval <= 0 {
		return fmt.Errorf("--interval %v: want a positive duration such as 1s", o.interval)
	}
	if o.window < o.interval {
		return fmt.Errorf("--window %v is shorter than --interval %v: a window needs two scrapes", o.window, o.interval)
	}
	if o.pricePerHour < 0 {
		return fmt.Errorf("--price-per-hour %v: want a price of 0 or more", o.pricePerHour)
	}
	if o.width < 80 {
		return fmt.Errorf("--width %d: want at least 80 columns", o.width)
	}
	if o.out != nil {
		if err := o.out.check(); err != nil {
			return err
		}
	}
	var objectives []loadgen.Objective
	if o.slo != "" {
		var err error
		if objectives, err = loadgen.ParseSLO(o.slo); err != nil {
			return err
		}
	}
	var servers []monitor.Server
	for i, s := range o.servers {
		u, err := serverURL("--server", s)
		if err != nil {
			return err
		}
		o.servers[i] = u.String()
		srv := monitor.Server{API: o.servers[i]}
		if o.metricsPort > 0 {
			srv.Metrics = siblingURL(u, o.metricsPort)
		}
		if o.adminPort > 0 {
			srv.Admin = siblingURL(u, o.adminPort)
		}
		servers = append(servers, srv)
	}
	token, err := serveOptions{adminTokenFile: o.adminTokenFile}.adminToken()
	if err != nil {
		return err
	}
	mon, err := monitor.New(monitor.Options{Servers: servers, Window: o.window, History: o.history,
		USDPerHour: o.pricePerHour, Token: token, Timeout: min(o.interval, monitor.DefaultTimeout)})
	if err != nil {
		return err
	}
	if err := reachable(mon.Poll(ctx), len(servers)); err != nil {
		return err
	}
	if o.out != nil && o.out.is(formatJSON) {
		return runTopJSON(ctx, stdout, mon.Poll, o.interval, o.count)
	}
	opts := tui.TopOptions{Poll: mon.Poll, Interval: o.interval, Servers: o.servers, Objectives: objectives, Context: ctx}

	f, isFile := stdout.(*os.File)
	if o.plain || !isFile || !term.IsTerminal(int(f.Fd())) {
		return tui.RunPlain(ctx, stdout, opts, o.width, o.count)
	}
	p := tea.NewProgram(tui.NewTop(opts), tea.WithContext(ctx), tea.WithOutput(stdout))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// reachable is nil when at least one server answered the first poll, and
// otherwise an error naming each server and why it could not be read:
// watching nothing is not a dashboard.
func reachable(f monitor.Frame, servers int) error {
	if len(f.Errors) < servers {
		return nil
	}
	var why []string
	for _, server := range slices.Sorted(maps.Keys(f.Errors)) {
		why = append(why, fmt.Sprintf("%s: %v", server, f.Errors[server]))
	}
	return fmt.Errorf("cannot read any server's metrics (is infer serve running there? give --server URL):\n  %s", strings.Join(why, "\n  "))
}
