package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// writeCLIReference writes docs/cli.md: every command under root, its
// synopsis, and every flag it takes with its default, as --help shows
// them. TestCLIReferenceIsCurrent keeps the file in step with the code.
func writeCLIReference(w io.Writer, root *cobra.Command) {
	fmt.Fprint(w, `# Command-line reference

Generated from the commands themselves (`+"`INFER_UPDATE_DOCS=1 go test ./cmd/infer -run TestCLIReferenceIsCurrent`"+`).

Conventions shared by every command: the server a client talks to is
`+"`--server URL`"+` (default the local `+"`infer serve`"+`; `+"`infer bench`"+` also takes it
as its argument); formats are `+"`-o/--output`"+` among `+"`text`, `json`, `yaml`"+`,
whose JSON and YAML use the protocol's field names; files written are
`+"`--out FILE`"+` or named for their format (`+"`--csv`, `--html`"+`); the common
flags have short forms: `+"`-m`"+` model, `+"`-c`"+` concurrency, `+"`-d`"+` duration,
`+"`-o`"+` output. `+"`--log-level`"+` (default info; warn for `+"`models list`"+` and
`+"`models config`"+`, whose output is their answer) applies everywhere;
`+"`--onnxruntime-lib`"+` only to the commands that load ONNX Runtime.
`)
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		fmt.Fprintf(w, "\n## %s\n\n%s\n\n```\n%s\n```\n", c.CommandPath(), c.Short, c.UseLine())
		if c.HasAvailableLocalFlags() {
			fmt.Fprintf(w, "\n| flag | default | meaning |\n|---|---|---|\n")
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Hidden || f.Deprecated != "" || f.Name == "help" {
					return
				}
				name := "`--" + f.Name + "`"
				if f.Shorthand != "" {
					name = "`-" + f.Shorthand + "`, " + name
				}
				def := f.DefValue
				if def == "" || def == "[]" || def == "0" || def == "false" {
					def = ""
				} else {
					def = "`" + def + "`"
				}
				usage := strings.NewReplacer("|", `\|`, "\n", " ").Replace(f.Usage)
				fmt.Fprintf(w, "| %s | %s | %s |\n", name, def, usage)
			})
		}
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}
