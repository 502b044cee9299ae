package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walk calls visit for cmd and every command under it, hidden and
// cobra's own (help, completion) excepted.
func walk(cmd *cobra.Command, visit func(*cobra.Command)) {
	if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
		return
	}
	visit(cmd)
	for _, c := range cmd.Commands() {
		walk(c, visit)
	}
}

// Every command follows one convention, cobra's and kubectl's: formats
// are -o/--output with choices among text, json and yaml; --out names
// only a file; the server is --server; the common flags have their short
// forms; flag names are lower-case words joined by hyphens; the names
// replaced by the convention live on only as deprecated aliases; and
// --onnxruntime-lib is offered only where the runtime is loaded.
func TestEveryCommandFollowsTheFlagConvention(t *testing.T) {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	shorthand := map[string]string{"output": "o", "model": "m", "concurrency": "c", "duration": "d"}
	// Names the convention replaced: each may only be a deprecated alias.
	replaced := map[string]string{"json": "-o json", "version": "--model-version", "format": "-o", "url": "--server"}
	loadsRuntime := []string{"infer version", "infer serve", "infer models list", "infer models run", "infer models config", "infer deploy render"}
	kebab := regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	formats := regexp.MustCompile(`^output format: ((text|json|yaml)(, )?)+\b`)
	commands := 0
	walk(root, func(cmd *cobra.Command) {
		commands++
		path := cmd.CommandPath()
		if cmd.Short == "" {
			t.Errorf("%s: no short description", path)
		}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if cmd == root && f.Name == "version" {
				return // cobra's `infer --version`
			}
			if f.Name == "help" {
				return
			}
			where := path + " --" + f.Name
			if !kebab.MatchString(f.Name) {
				t.Errorf("%s: not a lower-case, hyphenated name", where)
			}
			if instead, ok := replaced[f.Name]; ok {
				if f.Deprecated == "" || !strings.Contains(f.Deprecated, instead) {
					t.Errorf("%s: replaced by %s; keep it only as a deprecated alias saying so (deprecated: %q)", where, instead, f.Deprecated)
				}
				return
			}
			if f.Deprecated != "" {
				return
			}
			if want, ok := shorthand[f.Name]; ok && f.Shorthand != want {
				t.Errorf("%s: shorthand %q, want -%s", where, f.Shorthand, want)
			}
			switch f.Name {
			case "output":
				if !formats.MatchString(f.Usage) {
					t.Errorf("%s: usage %q does not list its formats among text, json and yaml", where, f.Usage)
				}
				if f.DefValue != "text" && f.DefValue != "yaml" {
					t.Errorf("%s: default %q, want text (or yaml where the output is a document)", where, f.DefValue)
				}
			case "out":
				if !strings.Contains(f.Usage, "file") {
					t.Errorf("%s: --out is for a file to write, and its usage should say so: %q", where, f.Usage)
				}
			case "server":
				if !strings.Contains(f.Usage, "URL") {
					t.Errorf("%s: usage %q: --server is the server's URL", where, f.Usage)
				}
			case "onnxruntime-lib":
				if !slices.Contains(loadsRuntime, path) {
					t.Errorf("%s: this command does not load ONNX Runtime", where)
				}
			}
		})
		if slices.Contains(loadsRuntime, path) && cmd.Flags().Lookup("onnxruntime-lib") == nil {
			t.Errorf("%s loads ONNX Runtime but has no --onnxruntime-lib", path)
		}
		if f := cmd.InheritedFlags().Lookup("onnxruntime-lib"); f != nil {
			t.Errorf("%s inherits --onnxruntime-lib: offer it only where the runtime is loaded", path)
		}
	})
	if commands < 15 {
		t.Fatalf("walked %d commands: the tree was not walked", commands)
	}
}

// Every command's --help prints its usage; `infer --version` prints the
// version; a format a command does not offer is refused naming --output
// and the formats it does.
func TestHelpVersionAndOutputFormats(t *testing.T) {
	root := newRootCmd()
	var paths [][]string
	walk(root, func(cmd *cobra.Command) {
		paths = append(paths, strings.Fields(cmd.CommandPath())[1:])
	})
	for _, p := range paths {
		out, err := run(t, append(p, "--help")...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("infer %s --help: %v\n%s", strings.Join(p, " "), err, out)
		}
	}
	// A build that is not a release names its commit: "infer dev (abc123def456)".
	if out, err := run(t, "--version"); err != nil || !strings.HasPrefix(out, "infer "+version+" (") || !strings.HasSuffix(out, ")\n") {
		t.Fatalf("infer --version: %v, %q", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"version", "-o", "xml"}, `--output "xml": want text, json or yaml`},
		{[]string{"models", "list", "-o", "csv"}, `--output "csv": want text, json or yaml`},
		{[]string{"models", "config", "-m", "mlp", "-o", "text"}, `--output "text": want yaml or json`},
		{[]string{"bench", "-o", "html"}, `--output "html": want text, json or yaml`},
		{[]string{"rollout", "status", "-o", "yaml"}, `--output "yaml": want text or json`},
	} {
		if _, err := run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("infer %s: %v, want an error containing %s", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// JSON and YAML output spell the protocol's names and string enums, and
// YAML holds what JSON holds.
func TestStructuredOutputSpellsTheProtocolsNames(t *testing.T) {
	j, err := run(t, "models", "list", "-o", "json", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name": "all-types"`, `"datatype": "BOOL"`, `"state": "READY"`, `"max_batch_size": 64`} {
		if !strings.Contains(j, want) {
			t.Errorf("models list -o json lacks %s:\n%.600s", want, j)
		}
	}
	if strings.Contains(j, `"DataType"`) || strings.Contains(j, `"Name"`) {
		t.Errorf("models list -o json spells Go field names:\n%.600s", j)
	}
	y, err := run(t, "models", "list", "-o", "yaml", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"- name: all-types", "datatype: BOOL", "state: READY"} {
		if !strings.Contains(y, want) {
			t.Errorf("models list -o yaml lacks %q:\n%.600s", want, y)
		}
	}
	text, err := run(t, "models", "list", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if len(line) > 200 {
			t.Errorf("models list: a row of %d columns:\n%s", len(line), line)
		}
	}
}

// A starting server logs, at the default level (info), every model
// version it serves with its state, and the addresses it listens on.
func TestServerAnnouncesItsModelsAtInfo(t *testing.T) {
	if lvl := newRootCmd().PersistentFlags().Lookup("log-level").DefValue; lvl != "info" {
		t.Fatalf("default --log-level %s, want info", lvl)
	}
	repo, err := openRepository(&globalOptions{}, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var b bytes.Buffer
	announce(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})), repo,
		map[string]string{"HTTP": "127.0.0.1:8000", "admin": "127.0.0.1:8003"})
	log := b.String()
	for _, model := range []string{"mlp", "text-encoder", "multi-io", "all-types", "fixed-shape", "tiny-gpt"} {
		if !regexp.MustCompile(`level=INFO msg="model version ready" model=` + model + ` version=1 state=READY`).MatchString(log) {
			t.Errorf("no info line for %s v1:\n%s", model, log)
		}
	}
	if !strings.Contains(log, `msg=serving ready_versions=6 http=127.0.0.1:8000 grpc=off`) {
		t.Errorf("no line with the addresses:\n%s", log)
	}
}

// docs/cli.md lists every command and flag as the code defines them.
func TestCLIReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	writeCLIReference(&b, newRootCmd())
	const path = "../../docs/cli.md"
	if os.Getenv("INFER_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("%s is out of date: run INFER_UPDATE_DOCS=1 go test ./cmd/infer -run TestCLIReferenceIsCurrent", path)
	}
}
