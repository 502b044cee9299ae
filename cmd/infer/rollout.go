package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/deploy"
)

// rolloutOptions are the flags every rollout command shares.
type rolloutOptions struct {
	// server is the server's URL; its admin API is adminURL when given,
	// else on adminPort of the server's host.
	server         string
	adminURL       string
	adminPort      int
	model          string
	adminTokenFile string
	output         string
	poll           time.Duration
}

func (o rolloutOptions) client() (*deploy.Client, error) {
	if o.output != "text" && o.output != "json" {
		return nil, fmt.Errorf("--output %q: want text or json", o.output)
	}
	token, err := serveOptions{adminTokenFile: o.adminTokenFile}.adminToken()
	if err != nil {
		return nil, err
	}
	base := o.adminURL
	if base == "" {
		u, err := serverURL("--server", o.server)
		if err != nil {
			return nil, err
		}
		base = siblingURL(u, o.adminPort)
	} else if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &deploy.Client{Base: base, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// resolveModel resolves --model: the only model served when not given.
func (o rolloutOptions) resolveModel(ctx context.Context, c *deploy.Client) (string, error) {
	if o.model != "" {
		return o.model, nil
	}
	return c.OnlyModel(ctx)
}

func newRolloutCmd() *cobra.Command {
	o := rolloutOptions{}
	d := deploy.Spec{}.WithDefaults()
	var (
		version, from             int64
		canary, steps, shadow, ab string
		abKey, onChange           string
		blueGreen, detach         bool
		interval                  time.Duration
		a                         deploy.Analysis
	)
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Roll out a new model version on a running server: canary, blue-green, shadow, A/B",
		Long: `Start a rollout on a running infer serve and follow it to its end. The server
runs the rollout itself (it goes on if this command stops, and resumes after
a restart with --state-dir); this command prints each step, each analysis's
figures and its verdict.

The server (--server, default the local infer serve) is reached on its
admin API: --admin-port of its host (8003), or --admin-url. The model
defaults to the only one served, the stable version to the one with the most
traffic now, and the new version to the newest ready one newer than it: so
'infer rollout --canary 5%' just works once the new version is in the
repository.

Each step ends in an analysis whose verdict is pass, fail or inconclusive.
Fewer than --min-requests requests to the new version is inconclusive, never
a pass. With --max-p99-ratio, latency is judged beyond noise: a step fails
when a one-sided Mann-Whitney U test finds the new version slower than the
stable one times the ratio, or when its p98 bounded from below is above the
ratio times the stable version's p99 bounded from above (twice the slow
requests a p99 at the ratio allows), each test wrong at most 1 - --confidence
of the time. A p99 needs enough requests to mean
anything (368 from each version at the default 0.95): with fewer, and nothing
slower found, the step is inconclusive. --inconclusive-limit inconclusive
steps in a row pause the rollout for 'infer rollout promote' or 'abort'.

Exit status: 0 when the new version is promoted (or a shadow completes), 1
when it is rolled back or aborted; a paused rollout is followed until one of
them, which another shell gives with 'infer rollout promote' or 'abort'.`,
		Example: `  infer rollout --canary 5%
  infer rollout -m mlp --model-version 2 --steps 10,50,100 --interval 1m --max-p99-ratio 1.2
  infer rollout --blue-green
  infer rollout --shadow 10% --max-drift 1e-4
  infer rollout --ab 50% --ab-key header:X-User-Id
  infer rollout status --watch
  infer rollout abort`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			spec := deploy.Spec{Strategy: deploy.Canary, Interval: deploy.Duration(interval), OnCandidateChange: onChange, Analysis: a}
			switch {
			case blueGreen:
				spec.Strategy = deploy.BlueGreen
			case shadow != "":
				spec.Strategy = deploy.Mirror
				if spec.ShadowFraction, err = deploy.ParsePercent(shadow); err != nil {
					return fmt.Errorf("--shadow %w", err)
				}
				spec.ShadowFraction /= 100
			case ab != "":
				spec.Strategy, spec.Sticky = deploy.AB, abKey
				p, err := deploy.ParsePercent(ab)
				if err != nil {
					return fmt.Errorf("--ab %w", err)
				}
				spec.Steps = []float64{p}
			case canary != "":
				p, err := deploy.ParsePercent(canary)
				if err != nil {
					return fmt.Errorf("--canary %w", err)
				}
				spec.Steps = []float64{p}
				for _, s := range d.Steps {
					if s > p {
						spec.Steps = append(spec.Steps, s)
					}
				}
			case steps != "":
				for _, f := range strings.Split(steps, ",") {
					p, err := deploy.ParsePercent(f)
					if err != nil {
						return fmt.Errorf("--steps %w", err)
					}
					spec.Steps = append(spec.Steps, p)
				}
			}
			if ab == "" && abKey != "" {
				return errors.New("--ab-key is for --ab: give the split too, e.g. --ab 50%")
			}
			// A new version's folder is loaded only when the rollout could
			// start with it: a load resets the live model's figures.
			check := func(t deploy.Target) error {
				if st, err := c.Rollout(cmd.Context(), t.Model); err == nil && !st.Done() {
					return fmt.Errorf("the %s of %q to version %d is %s: abort it first", st.Spec.Strategy, t.Model, st.Spec.Candidate, st.Phase)
				}
				try := spec
				try.Model, try.Stable, try.Candidate = t.Model, t.Stable, t.Candidate
				return try.WithDefaults().Validate()
			}
			loading := func(model string, v int64) {
				fmt.Fprintf(cmd.ErrOrStderr(), "loading %q to pick up its new version %d\n", model, v)
			}
			t, err := c.ResolveOrLoad(cmd.Context(), deploy.Target{Model: o.model, Stable: from, Candidate: version}, check, loading)
			if err != nil {
				return err
			}
			spec.Model, spec.Stable, spec.Candidate = t.Model, t.Stable, t.Candidate
			st, err := c.Start(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if detach {
				return printState(cmd.OutOrStdout(), o.output, st)
			}
			return follow(cmd.Context(), c, cmd.OutOrStdout(), o, st.Spec.Model, time.Time{})
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.server, "server", defaultServer, "the server's URL; its admin API is on --admin-port of the same host")
	pf.IntVar(&o.adminPort, "admin-port", DefaultAdminPort, "the port of the server's admin API (its serve --admin-port)")
	pf.StringVar(&o.adminURL, "admin-url", "", "the admin API's own URL, when it is not on --admin-port of the server's host (such as the HTTP port of a server with an admin token)")
	pf.StringVarP(&o.model, "model", "m", "", "model name (default: the only model served)")
	pf.StringVar(&o.adminTokenFile, "admin-token-file", "", "file holding the server's admin token (or $"+adminTokenEnv+")")
	pf.StringVarP(&o.output, "output", "o", formatText, "output format: text, json (one JSON event a line while following; the rollout's state otherwise)")
	pf.DurationVar(&o.poll, "poll", 500*time.Millisecond, "how often to read the rollout while following it")
	f := cmd.Flags()
	f.Int64Var(&version, "model-version", 0, "the new version (default: the newest ready version newer than the stable one)")
	f.Int64Var(&version, "version", 0, "the same as --model-version")
	_ = f.MarkDeprecated("version", "use --model-version")
	f.Int64Var(&from, "from", 0, "the stable version (default: the one with the most traffic now)")
	f.StringVar(&canary, "canary", "", "canary, starting at this share and going on through 25%, 50%, 100% (the default strategy: 5%)")
	f.StringVar(&steps, "steps", "", "canary steps as percentages, e.g. 5,25,50,100")
	f.BoolVar(&blueGreen, "blue-green", false, "verify the new version with smoke requests, then switch all traffic at once, keeping the old one warm for undo")
	f.StringVar(&shadow, "shadow", "", "mirror this share of requests to the new version and judge drift; it never serves")
	f.StringVar(&ab, "ab", "", "A/B test: this share to the new version, sticky per --ab-key, until promoted or aborted")
	f.StringVar(&abKey, "ab-key", "", `the A/B assignment key: "id" (the request id) or "header:Name"`)
	f.DurationVar(&interval, "interval", time.Duration(d.Interval), "how long each step runs before it is analysed")
	f.Int64Var(&a.MinRequests, "min-requests", d.Analysis.MinRequests, "fewer requests to the new version in a step is inconclusive, never a pass")
	f.Float64Var(&a.MinSuccessRate, "min-success-rate", d.Analysis.MinSuccessRate, "the new version's lowest success rate in a step")
	f.Float64Var(&a.MaxP99Ratio, "max-p99-ratio", 0, "how much slower than the stable version the new one may be in a step, judged beyond noise by a rank test and p99 bounds (0: not checked)")
	f.Float64Var(&a.Confidence, "confidence", d.Analysis.Confidence, "how sure a latency verdict must be: each latency test calls noise a regression at most 1 - this of the time; a p99 then needs "+strconv.FormatUint(d.Analysis.MinLatencyRequests(), 10)+" requests per version")
	f.Float64Var(&a.MaxDrift, "max-drift", 0, "shadow: the highest mean max-abs-difference above the noise floor (0: not checked)")
	f.Float64Var(&a.MaxOutputDrift, "max-output-drift", 0, "the highest PSI of any output feature of the new version against the stable one's over a step, 0.25 being a significant shift (0: not checked; needs monitor.sample in config.yaml)")
	f.IntVar(&a.FailureLimit, "failure-limit", d.Analysis.FailureLimit, "failed analyses before rolling back")
	f.IntVar(&a.InconclusiveLimit, "inconclusive-limit", d.Analysis.InconclusiveLimit, "inconclusive analyses in a row before pausing for a person to decide")
	f.StringVar(&onChange, "on-candidate-change", d.OnCandidateChange, "what a change of the new version's files during the rollout does: abort (roll back) or restart (from the first step, judging the new files)")
	f.BoolVar(&detach, "detach", false, "start the rollout and return; follow it with 'infer rollout status --watch'")
	cmd.MarkFlagsMutuallyExclusive("canary", "steps", "blue-green", "shadow", "ab")

	cmd.AddCommand(newRolloutStatusCmd(&o), newRolloutHistoryCmd(&o))
	for _, c := range []struct{ name, short string }{
		{"promote", "End the rollout with all traffic on the new version"},
		{"abort", "End the rollout with all traffic on the stable version"},
		{"undo", "After a promotion, move all traffic back to the stable version at once"},
	} {
		cmd.AddCommand(newRolloutCommandCmd(&o, c.name, c.short))
	}
	return cmd
}

func newRolloutStatusCmd(o *rolloutOptions) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the model's rollout: phase, step, traffic and the last analysis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, model, st, err := o.current(cmd.Context())
			if err != nil {
				return err
			}
			if watch && !st.Done() {
				return follow(cmd.Context(), c, cmd.OutOrStdout(), *o, model, time.Time{})
			}
			if o.output == "json" {
				return printState(cmd.OutOrStdout(), o.output, st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, summary(st))
			if e, ok := st.LastAnalysis(); ok {
				fmt.Fprintf(w, "last analysis: %s\n", eventLine(e))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the rollout, printing each event, until it ends")
	return cmd
}

func newRolloutHistoryCmd(o *rolloutOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "history",
		Short: "Print every event of the model's rollout, with each analysis's figures",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, st, err := o.current(cmd.Context())
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printState(cmd.OutOrStdout(), o.output, st)
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary(st))
			for _, e := range st.History {
				fmt.Fprintln(cmd.OutOrStdout(), eventLine(e))
			}
			return nil
		},
	}
}

func newRolloutCommandCmd(o *rolloutOptions, name, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, model, err := o.connect(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Command(cmd.Context(), model, name)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printState(cmd.OutOrStdout(), o.output, st)
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary(st))
			return nil
		},
	}
}

// current connects and reads the model's rollout.
func (o rolloutOptions) current(ctx context.Context) (*deploy.Client, string, deploy.State, error) {
	c, model, err := o.connect(ctx)
	if err != nil {
		return nil, "", deploy.State{}, err
	}
	st, err := c.Rollout(ctx, model)
	return c, model, st, err
}

func (o rolloutOptions) connect(ctx context.Context) (*deploy.Client, string, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", err
	}
	model, err := o.resolveModel(ctx, c)
	return c, model, err
}

// follow prints the rollout's events after since as they happen, until it
// ends: nil when the new version was promoted or a shadow completed, an
// error naming the reason when it was rolled back or aborted. A paused
// rollout waits for promote or abort, which it says how to give.
func follow(ctx context.Context, c *deploy.Client, w io.Writer, o rolloutOptions, model string, since time.Time) error {
	enc := json.NewEncoder(w)
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	for {
		st, err := c.Rollout(ctx, model)
		if err != nil {
			return err
		}
		for _, e := range st.History {
			if !e.Time.After(since) {
				continue
			}
			since = e.Time
			if o.output == "json" {
				if err := enc.Encode(e); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(w, eventLine(e))
				if e.Kind == deploy.Paused {
					fmt.Fprintf(w, "waiting for a decision: 'infer rollout promote -m %s' or 'infer rollout abort -m %s' (interrupting this leaves the rollout paused)\n", model, model)
				}
			}
		}
		if st.Done() {
			last := st.History[len(st.History)-1]
			switch st.Phase {
			case deploy.Promoted, deploy.Completed:
				return nil
			}
			return fmt.Errorf("rollout of %q to version %d %s: %s", model, st.Spec.Candidate, st.Phase, last.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func printState(w io.Writer, output string, st deploy.State) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	_, err := fmt.Fprintln(w, summary(st))
	return err
}

// summary is one line: what the rollout is and where it stands.
func summary(st deploy.State) string {
	s := st.Spec
	if s.Strategy == deploy.Mirror {
		return fmt.Sprintf("%s: shadow of version %d beside version %d, %g%% of requests mirrored, none served, %s", s.Model, s.Candidate, s.Stable, 100*s.ShadowFraction, st.Phase)
	}
	if st.Done() {
		return fmt.Sprintf("%s: %s from version %d to %d, %s at step %d of %d: version %d serves %g%% of requests", s.Model, s.Strategy, s.Stable, s.Candidate, st.Phase, st.Step+1, len(s.Steps), s.Candidate, st.Percent())
	}
	return fmt.Sprintf("%s: %s from version %d to %d, %s at step %d of %d (%g%%)", s.Model, s.Strategy, s.Stable, s.Candidate, st.Phase, st.Step+1, len(s.Steps), st.Percent())
}

// eventLine is one event: when, the step, what happened and why, and the
// analysis's figures, sorted by name.
func eventLine(e deploy.Event) string {
	var b strings.Builder
	step := fmt.Sprintf("step %d (%g%%)", e.Step+1, e.Percent) // padded: 5% and 100% rows align
	fmt.Fprintf(&b, "%s  %-15s %-12s %s", e.Time.Local().Format("15:04:05"), step, e.Kind, e.Reason)
	for _, k := range slices.Sorted(maps.Keys(e.Figures)) {
		b.WriteString("  " + k + "=" + strconv.FormatFloat(e.Figures[k], 'g', 4, 64))
	}
	return b.String()
}
