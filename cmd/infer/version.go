package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/infer-serving/infer/pkg/runner"
)

// Set at release time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

type versionInfo struct {
	Version        string `json:"version"`
	Commit         string `json:"commit"`
	Go             string `json:"go"`
	Platform       string `json:"platform"`
	ONNXRuntime    string `json:"onnxruntime"`
	ONNXRuntimeLib string `json:"onnxruntime_lib,omitempty"`
	ONNXRuntimeErr string `json:"onnxruntime_error,omitempty"`
}

func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return "unknown"
}

// shortVersion is what --version prints: the version, and for a build
// that is not a release ("dev") the commit it was built from, short.
func shortVersion() string {
	if version != "dev" {
		return version
	}
	rev, dirty, _ := strings.Cut(buildCommit(), "-")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty != "" {
		rev += "-" + dirty
	}
	return version + " (" + rev + ")"
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	var (
		out    *outputFlag
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and the ONNX Runtime loaded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				out.format = formatJSON
			}
			if err := out.check(); err != nil {
				return err
			}
			info := versionInfo{
				Version:  version,
				Commit:   buildCommit(),
				Go:       runtime.Version(),
				Platform: runtime.GOOS + "/" + runtime.GOARCH,
			}
			if rt, err := runner.InitRuntime(g.onnxRuntimeLib); err != nil {
				info.ONNXRuntime, info.ONNXRuntimeErr = "not loaded", err.Error()
			} else {
				info.ONNXRuntime, info.ONNXRuntimeLib = rt.Version, rt.Path
			}
			return out.write(cmd.OutOrStdout(), info, info.writeText)
		},
	}
	out = addOutputFlag(cmd, false, "", formatText, formatJSON, formatYAML)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	_ = cmd.Flags().MarkDeprecated("json", "use -o json")
	return cmd
}

// writeText prints info for people, one fact a line.
func (info versionInfo) writeText(w io.Writer) error {
	fmt.Fprintf(w, "infer %s\ncommit:       %s\ngo:           %s %s\nonnxruntime:  %s", info.Version, info.Commit, info.Go, info.Platform, info.ONNXRuntime)
	if info.ONNXRuntimeLib != "" {
		fmt.Fprintf(w, " (%s)", info.ONNXRuntimeLib)
	}
	fmt.Fprintln(w)
	if info.ONNXRuntimeErr != "" {
		fmt.Fprintf(w, "              %s\n", info.ONNXRuntimeErr)
	}
	return nil
}
