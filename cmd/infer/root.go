package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/infer-serving/infer"
	"github.com/infer-serving/infer/pkg/runner"
)

// globalOptions are the settings commands share: --log-level, which
// every command takes, and --onnxruntime-lib, which only the commands
// that load the runtime take (addRuntimeFlag).
type globalOptions struct {
	onnxRuntimeLib string
	logLevel       string
}

// addRuntimeFlag gives cmd --onnxruntime-lib: for the commands that load
// ONNX Runtime in this process, and only those.
func addRuntimeFlag(cmd *cobra.Command, g *globalOptions) {
	cmd.Flags().StringVar(&g.onnxRuntimeLib, "onnxruntime-lib", "", "path to libonnxruntime.so (default: $"+runner.LibraryEnv+", beside the binary, then the cache folder)")
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "infer",
		Short: "Serve ONNX models and measure inference servers",
		Long: `infer serves ONNX models through ONNX Runtime over the Open Inference
Protocol (KServe v2), benchmarks any such server honestly, and rolls out new
model versions.

Conventions: the server a client command talks to is --server URL (default
the local infer serve); formats are -o/--output text|json|yaml; files
written are --out FILE (or a flag named for the format, such as --csv).`,
		Version:       shortVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			name := g.logLevel
			if quiet, ok := cmd.Annotations[quietLogs]; ok && !cmd.Flags().Changed("log-level") {
				name = quiet
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(name)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
			return nil
		},
	}
	root.SetVersionTemplate("infer {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	versionCmd, models, serve := newVersionCmd(g), newModelsCmd(g), newServeCmd(g)
	root.AddCommand(versionCmd, models, serve, newBenchCmd(g), newRolloutCmd(), newDeployCmd(g), newTopCmd(), newMonitorCmd())
	// The commands that load ONNX Runtime in this process, and only they,
	// say where it is.
	for _, c := range append([]*cobra.Command{versionCmd, serve}, models.Commands()...) {
		addRuntimeFlag(c, g)
	}
	groups(root)
	return root
}

// groups makes every command below root that only groups others (deploy,
// models, monitor) answer an argument that names none of them with an
// error, the closest names suggested, as the root does: cobra alone prints
// the group's help and exits 0, so a mistyped command passes in a script.
// A command that runs and has commands too (bench, rollout) suggests the
// command an argument it refuses is closest to.
func groups(root *cobra.Command) {
	for _, c := range root.Commands() {
		groups(c)
		if !c.HasSubCommands() {
			continue
		}
		c.SuggestionsMinimumDistance = 2
		if c.Runnable() {
			check := c.Args
			c.Args = func(cmd *cobra.Command, args []string) error {
				if check == nil {
					return nil
				}
				err := check(cmd, args)
				if err != nil && len(args) > 0 {
					if near := cmd.SuggestionsFor(args[0]); len(near) > 0 {
						return fmt.Errorf("%w (did you mean %s %s? see %s --help)", err, cmd.CommandPath(), orList(near), cmd.CommandPath())
					}
				}
				return err
			}
			continue
		}
		c.Annotations = map[string]string{groupOnly: "true"}
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, args[0])
		}
	}
}

// groupOnly annotates a command that only groups others.
const groupOnly = "infer/group"

// unknownCommand is a group's answer to an argument that names none of
// its commands.
func unknownCommand(cmd *cobra.Command, name string) error {
	err := fmt.Errorf("unknown command %q for %q", name, cmd.CommandPath())
	if near := cmd.SuggestionsFor(name); len(near) > 0 {
		return fmt.Errorf("%w (did you mean %s? see %s --help)", err, orList(near), cmd.CommandPath())
	}
	return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
}

// flagError is every command's answer to a flag it cannot parse: an
// unknown flag names the flags it most likely meant (suggest), and every
// flag error where the flags are listed. Given to a group with an
// argument that names none of its commands (infer deploy rendr --out x),
// the mistyped command is the error, not the flag its command would take.
func flagError(cmd *cobra.Command, err error) error {
	if args := cmd.Flags().Args(); cmd.Annotations[groupOnly] != "" && len(args) > 0 {
		return unknownCommand(cmd, args[0])
	}
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		if near := suggest(cmd.Flags(), name); len(near) > 0 {
			for i := range near {
				near[i] = "--" + near[i]
			}
			return fmt.Errorf("%w (did you mean %s? see %s --help)", err, orList(near), cmd.CommandPath())
		}
	}
	return fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())
}

// otherTools maps flags of the tools infer's users come from (vegeta,
// hey, wrk, Triton's tritonserver and perf_analyzer, vLLM) to infer's.
var otherTools = map[string]string{
	"rate": "qps", "workers": "concurrency", "connections": "concurrency", "concurrency-range": "concurrency",
	"request-rate-range": "qps", "measurement-interval": "duration", "port": "http-port",
	"model-store": "model-repository", "model-path": "model-repository", "served-model-name": "model",
}

// suggest returns the flags of fs that an unknown --name most likely
// meant: the flag another tool's name stands for here; else those whose
// name holds name whole, at a word's start (--port: --http-port,
// --grpc-port...; --model-repo: --model-repository), at most four; else
// the closest within two edits.
func suggest(fs *pflag.FlagSet, name string) []string {
	if to, ok := otherTools[name]; ok {
		if f := fs.Lookup(to); f != nil && !f.Hidden {
			if name == "port" {
				return portFlags(fs)
			}
			return []string{to}
		}
	}
	var holding []string
	best, dist := "", 3 // at most two edits away
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if i := strings.Index(f.Name, name); len(name) >= 3 && i >= 0 && (i == 0 || f.Name[i-1] == '-') {
			holding = append(holding, f.Name)
		}
		if d := levenshtein.ComputeDistance(name, f.Name); d < dist {
			best, dist = f.Name, d
		}
	})
	switch {
	case len(holding) > 0 && dist > 1:
		return holding[:min(len(holding), 4)]
	case best != "":
		return []string{best}
	}
	return holding
}

// portFlags lists fs's port flags, the inference ports first.
func portFlags(fs *pflag.FlagSet) []string {
	var out []string
	for _, name := range []string{"http-port", "grpc-port", "metrics-port", "admin-port"} {
		if f := fs.Lookup(name); f != nil && !f.Hidden {
			out = append(out, name)
		}
	}
	return out
}

// quietLogs annotates a command whose output is its answer (a listing, a
// configuration) with the log level it runs at unless --log-level is
// given: the models it loads to answer are no news.
const quietLogs = "infer/default-log-level"

// openRepository opens the model repository at path, or the bundled
// models when path is empty. Models that fail to load are reported on w
// and skipped; it fails only when nothing could be loaded.
func openRepository(g *globalOptions, path string, w io.Writer) (*runner.Repository, error) {
	return openRepositoryWith(g, path, repoOptions{}, w)
}

// repoOptions tune openRepositoryWith.
type repoOptions struct {
	// device, isolation and loadTimeout are runner.LoadOptions' Device,
	// Isolation and LoadTimeout.
	device, isolation string
	loadTimeout       time.Duration
	// stateDir is runner.LoadOptions' StateDir: where monitored versions
	// keep their samples for review.
	stateDir string
	// strict fails when any model fails to load (Triton's
	// --exit-on-error); otherwise failed models are reported and kept,
	// UNAVAILABLE with their reason.
	strict bool
	// allowNone returns the repository even when no model loaded: a
	// server then starts, reports itself not ready, and lists why.
	allowNone bool
	// control is the repository's model control (infer serve).
	control runner.Control
}

// check names a device or isolation flag that is wrong.
func (ro repoOptions) check() error {
	if ro.device != "" {
		if _, err := runner.ParseDevice(ro.device); err != nil {
			return fmt.Errorf("--device: %w", err)
		}
	}
	if ro.isolation != "" && ro.isolation != runner.IsolationProcess && ro.isolation != runner.IsolationNone {
		return fmt.Errorf("--isolation %q: want %s or %s", ro.isolation, runner.IsolationProcess, runner.IsolationNone)
	}
	return nil
}

// openRepositoryWith opens a repository as openRepository does, with ro.
func openRepositoryWith(g *globalOptions, path string, ro repoOptions, w io.Writer) (*runner.Repository, error) {
	if err := ro.check(); err != nil {
		return nil, err
	}
	if _, err := runner.InitRuntime(g.onnxRuntimeLib); err != nil {
		return nil, err
	}
	var (
		repo *runner.Repository
		err  error
	)
	opts := runner.LoadOptions{Device: ro.device, Isolation: ro.isolation, LoadTimeout: ro.loadTimeout, StateDir: ro.stateDir, Control: ro.control}
	if path == "" {
		repo, err = runner.OpenFS(infer.BundledModels(), infer.BundledModelsName, opts)
	} else {
		repo, err = runner.Open(path, opts)
	}
	if repo == nil {
		return nil, err
	}
	if err != nil {
		if ro.strict {
			repo.Close()
			return nil, fmt.Errorf("--strict-model-control: %w", err)
		}
		fmt.Fprintf(w, "warning: some models did not load:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	if ro.allowNone {
		return repo, nil
	}
	for _, s := range repo.Index() {
		if s.State == runner.StateReady {
			return repo, nil
		}
	}
	repo.Close()
	return nil, errors.New("no model could be loaded")
}
