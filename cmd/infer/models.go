package main

import (
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

func newModelsCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List a repository's models or a running server's (--server), and run models in process",
	}
	cmd.AddCommand(newModelsListCmd(g), newModelsRunCmd(g), newModelsConfigCmd(g))
	return cmd
}

func newModelsListCmd(g *globalOptions) *cobra.Command {
	var (
		out    *outputFlag
		asJSON bool
		server string
	)
	cmd := &cobra.Command{
		Use:         "list [MODEL.onnx | MODEL_REPOSITORY | --server URL]",
		Annotations: map[string]string{quietLogs: "warn"},
		Short:       "Print model versions, state, memory, inputs and outputs: loaded in process (default: the bundled models) or on a running server",
		Long: `Print every model version with its state and measured memory.

Given a repository (or nothing: the bundled models), it loads them in this
process and also prints each version's device, max batch, inputs and
outputs. With --server it asks a running server instead, over the
repository index (POST /v2/repository/index): every version the server
knows, loaded or not (in on-demand mode a version not yet asked for is
UNAVAILABLE until its first request), with each loaded version's memory
and when each was last used.`,
		Example: `  infer models list ./models
  infer models list --server localhost:8000 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				out.format = formatJSON
			}
			if err := out.check(); err != nil {
				return err
			}
			if server != "" {
				if len(args) > 0 {
					return fmt.Errorf("give a repository (%s) or --server, not both", args[0])
				}
				return listServerModels(cmd.Context(), server, cmd.OutOrStdout(), out)
			}
			repo, err := openRepository(g, firstArg(args), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer repo.Close()
			return listModels(repo, cmd.OutOrStdout(), out)
		},
	}
	out = addOutputFlag(cmd, false, "json and yaml list every input and output", formatText, formatJSON, formatYAML)
	cmd.Flags().StringVar(&server, "server", "", "list a running server's models, from its URL (such as "+defaultServer+"), instead of loading any")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	_ = cmd.Flags().MarkDeprecated("json", "use -o json")
	return cmd
}

func newModelsConfigCmd(g *globalOptions) *cobra.Command {
	var (
		model string
		out   *outputFlag
	)
	cmd := &cobra.Command{
		Use:         "config [MODEL.onnx | MODEL_REPOSITORY] --model NAME",
		Annotations: map[string]string{quietLogs: "warn"},
		Short:       "Print the configuration in effect for a model, defaults applied, as YAML",
		Args:        cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("--model is required (see `infer models list` for names)")
			}
			if err := out.check(); err != nil {
				return err
			}
			repo, err := openRepository(g, firstArg(args), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer repo.Close()
			m, err := repo.Model(model, 0)
			if err != nil {
				return fmt.Errorf("--model %q: %w%s", model, err, knownModels(repo))
			}
			cfg := m.Config().Marshal()
			if out.is(formatJSON) {
				var doc any
				if err := yaml.Unmarshal(cfg, &doc); err != nil {
					return fmt.Errorf("model %q: configuration: %w", model, err)
				}
				return out.write(cmd.OutOrStdout(), doc, nil)
			}
			_, err = cmd.OutOrStdout().Write(cfg)
			return err
		},
	}
	cmd.Flags().StringVarP(&model, "model", "m", "", "model name")
	out = addOutputFlag(cmd, false, "", formatYAML, formatJSON)
	return cmd
}

func firstArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

// modelListing is one row of `infer models list`: its JSON and YAML use
// the protocol's names (inputs and outputs as in model metadata, datatype
// strings such as FP32, the repository index's states).
type modelListing struct {
	Name         string                    `json:"name"`
	Version      int64                     `json:"version"`
	State        string                    `json:"state"`
	Reason       string                    `json:"reason,omitempty"`
	Device       string                    `json:"device,omitempty"`
	MaxBatchSize *int                      `json:"max_batch_size,omitempty"` // in process only: the index has no room for it
	Inputs       []protocol.TensorMetadata `json:"inputs,omitempty"`
	Outputs      []protocol.TensorMetadata `json:"outputs,omitempty"`
	Parameters   protocol.Parameters       `json:"parameters,omitempty"` // outputs not served
	LoadSeconds  float64                   `json:"load_seconds,omitempty"`
	WarmupSecs   float64                   `json:"warmup_seconds,omitempty"`
	// LoadedBytes is a loaded version's measured memory (absent while
	// unloaded), LastUsed its last request's start or its load, on a
	// server (absent in process, where nothing has been used).
	LoadedBytes int64     `json:"loaded_bytes,omitempty"`
	LastUsed    time.Time `json:"last_used,omitzero"`
}

func listModels(repo *runner.Repository, w io.Writer, out *outputFlag) error {
	var rows []modelListing
	for _, s := range repo.Index() {
		l := modelListing{Name: s.Name, Version: s.Version, State: s.State, Reason: s.Reason}
		if m, err := repo.Model(s.Name, s.Version); err == nil {
			l.LoadedBytes = s.Bytes
			l.Device = m.Device().String()
			l.MaxBatchSize = m.Config().MaxBatchSize
			meta := m.Metadata()
			l.Inputs, l.Outputs = httpapi.TensorMetadata(meta.Inputs), httpapi.TensorMetadata(meta.Outputs)
			l.Parameters = httpapi.UnservedParameters(meta.Unserved)
			l.LoadSeconds, l.WarmupSecs = m.LoadDuration().Seconds(), m.WarmupDuration().Seconds()
		}
		rows = append(rows, l)
	}
	return out.write(w, rows, func(w io.Writer) error { return listText(w, rows) })
}

// listText prints one row a model version, each tensor list cut to what
// fits beside the rest (-o yaml lists them all).
func listText(w io.Writer, rows []modelListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATE\tMEMORY\tDEVICE\tMAX BATCH\tINPUTS\tOUTPUTS")
	var why []string // reasons too long for their row, in full below the table
	for _, l := range rows {
		if l.State != runner.StateReady {
			version := "-" // a model whose folder could not be read has none
			if l.Version > 0 {
				version = strconv.FormatInt(l.Version, 10)
			}
			reason := l.Reason
			if first, _, _ := strings.Cut(reason, "\n"); first != reason || utf8.RuneCountInString(first) > maxReason {
				reason = string([]rune(first)[:min(utf8.RuneCountInString(first), maxReason)]) + "… (below)"
				who := l.Name
				if l.Version > 0 {
					who += " v" + version
				}
				why = append(why, who+": "+l.Reason)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t\t\t%s\t\n", l.Name, version, l.State, reason)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Name, l.Version, l.State, memory(l.LoadedBytes), l.Device, *l.MaxBatchSize, specList(l.Inputs), specList(l.Outputs))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range why {
		fmt.Fprintf(w, "\n%s\n", r)
	}
	return nil
}

// maxReason is the most of a reason a row shows, in characters.
const maxReason = 60

// specList is tensors as "name DATATYPE [shape]", the first two at most
// and a count of the rest, so that a row stays within a terminal.
func specList(specs []protocol.TensorMetadata) string {
	const shown = 2
	var parts []string
	for _, s := range specs[:min(shown, len(specs))] {
		part := fmt.Sprintf("%s %s %v", s.Name, s.Datatype, s.Shape)
		if c, ok := s.Parameters[protocol.ParamContentType].(string); ok {
			part += " (" + c + ")" // a map, or sequence of maps, in the model
		}
		parts = append(parts, part)
	}
	if len(specs) > shown {
		parts = append(parts, fmt.Sprintf("+%d more", len(specs)-shown))
	}
	return strings.Join(parts, ", ")
}

// knownModels names the repository's models (the first maxNamed) for an
// error about one it lacks: "; the repository has a, b", or a pointer to
// `infer models list`.
func knownModels(repo *runner.Repository) string {
	names, err := repo.List()
	if err != nil || len(names) == 0 {
		return " (see `infer models list`)"
	}
	if len(names) > maxNamed {
		return fmt.Sprintf("; the repository has %s and %d more (see `infer models list`)", strings.Join(names[:maxNamed], ", "), len(names)-maxNamed)
	}
	return "; the repository has " + strings.Join(names, ", ")
}

// maxNamed bounds the model names an error lists.
const maxNamed = 20

// bundledModel reports whether name is a model of the bundled repository.
func bundledModel(name string) bool {
	info, err := fs.Stat(infer.BundledModels(), name)
	return err == nil && info.IsDir()
}
