package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// The output formats every command that prints a result chooses from
// with -o/--output, as kubectl and the GitHub CLI spell them. A command
// offers the subset that makes sense for it, text first when it has one.
const (
	formatText = "text"
	formatJSON = "json"
	formatYAML = "yaml"
)

// outputFlag is a command's -o/--output flag: the format chosen and the
// formats the command offers.
type outputFlag struct {
	format  string
	formats []string
}

// addOutputFlag registers -o/--output on fs with formats[0] as the
// default, and returns the flag's value.
func addOutputFlag(cmd *cobra.Command, persistent bool, usage string, formats ...string) *outputFlag {
	o := &outputFlag{format: formats[0], formats: formats}
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	text := "output format: " + strings.Join(formats, ", ")
	if usage != "" {
		text += " (" + usage + ")"
	}
	fs.StringVarP(&o.format, "output", "o", o.format, text)
	return o
}

// check names the flag and the formats on offer when the format given
// is not one of them.
func (o *outputFlag) check() error {
	if slices.Contains(o.formats, o.format) {
		return nil
	}
	return fmt.Errorf("--output %q: want %s", o.format, orList(o.formats))
}

// is reports whether the format chosen is f.
func (o *outputFlag) is(f string) bool { return o.format == f }

// write prints v in the format chosen: JSON (indented) and YAML from
// v's JSON field names, so both spell the protocol's names and enums
// the same way; text through the command's own writer.
func (o *outputFlag) write(w io.Writer, v any, text func(io.Writer) error) error {
	if err := o.check(); err != nil {
		return err
	}
	switch o.format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case formatYAML:
		return writeYAML(w, v)
	}
	return text(w)
}

// writeYAML writes v as block YAML with the keys and key order of its
// JSON encoding: JSON is YAML, so its document is read into a node tree
// and printed back in block style.
func writeYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	var block func(n *yaml.Node)
	block = func(n *yaml.Node) {
		n.Style &^= yaml.FlowStyle
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			n.Style &^= yaml.DoubleQuotedStyle // quoted again only where YAML needs it
		}
		for _, c := range n.Content {
			block(c)
		}
	}
	block(&doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

// orList spells a list of choices: "a", "a or b", "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
