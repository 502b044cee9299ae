package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// step is one command of the README's worked path and the output it
// documents: each line must appear in what the command printed, in
// order, "..." standing for anything.
type step struct {
	command  string
	want     []string
	detached bool // ends with &: runs in the background
}

// workedPath reads the console block after the worked-path marker.
func workedPath(t *testing.T, readme string) []step {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- worked-path -->\n```console\n")
	if !ok {
		t.Fatal("README.md has no worked path (a console block after <!-- worked-path -->)")
	}
	block, _, _ := strings.Cut(rest, "\n```")
	var steps []step
	for _, line := range strings.Split(block, "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			s := step{command: cmd}
			if c, bg := strings.CutSuffix(cmd, " &"); bg {
				s.command, s.detached = c, true
			}
			steps = append(steps, s)
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("README worked path: output %q before any command", line)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
	}
	return steps
}

// matches reports whether out holds want's pieces between "..." in
// order.
func matches(out, want string) bool {
	for _, piece := range strings.Split(want, "...") {
		i := strings.Index(out, piece)
		if i < 0 {
			return false
		}
		out = out[i+len(piece):]
	}
	return true
}

// The README's worked path, every command as written, against a live
// server on its default ports: in a network namespace of its own, so that
// those ports are free whatever else runs on the machine. Each command
// must exit 0 and print what the README shows; the server must log its
// models at start and stop cleanly at the end.
func TestREADMEWorkedPath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs the README's commands")
	}
	if err := exec.Command("unshare", "-rn", "true").Run(); err != nil {
		t.Skipf("no unprivileged network namespaces here (unshare -rn: %v): the worked path needs ports 8000-8003 of its own", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the worked path uses curl")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps := workedPath(t, string(readme))
	if len(steps) < 8 {
		t.Fatalf("the worked path has %d commands", len(steps))
	}

	// infer on the PATH is this test binary, running main.
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %s \"$@\"\n", runMainEnv, strconv.Quote(self))
	if err := os.WriteFile(filepath.Join(bin, "infer"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(work, "testdata")); err != nil {
		t.Fatal(err)
	}

	// One shell in the namespace runs every step, each into its own files.
	var script strings.Builder
	script.WriteString("ip link set lo up || exit 97\n")
	for i, s := range steps {
		if s.detached {
			fmt.Fprintf(&script, "( %s ) >out.%d 2>&1 &\nbg=$!\necho 0 >rc.%d\n", s.command, i, i)
			continue
		}
		fmt.Fprintf(&script, "( %s ) >out.%d 2>&1; echo $? >rc.%d\n", s.command, i, i)
	}
	script.WriteString("if [ -n \"${bg:-}\" ]; then kill -TERM $bg; wait $bg; echo $? >rc.bg; fi\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "unshare", "-rn", "bash", "-c", script.String())
	sh.Dir = work
	sh.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "NO_COLOR=1")
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the worked path's shell: %v\n%s", err, out)
	}

	read := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(work, name))
		return string(data)
	}
	for i, s := range steps {
		out := read(fmt.Sprintf("out.%d", i))
		if rc := strings.TrimSpace(read(fmt.Sprintf("rc.%d", i))); rc != "0" {
			t.Errorf("$ %s\nexit %s:\n%s", s.command, rc, out)
			continue
		}
		for _, want := range s.want {
			if !matches(out, want) {
				t.Errorf("$ %s\nprinted no %q:\n%s", s.command, want, out)
			}
		}
	}
	for i, s := range steps {
		if !s.detached {
			continue
		}
		log := read(fmt.Sprintf("out.%d", i))
		if rc := strings.TrimSpace(read("rc.bg")); rc != "0" {
			t.Errorf("$ %s: exit %s after SIGTERM:\n%s", s.command, rc, log)
		}
		for _, want := range []string{`level=INFO msg="model version ready" model=mlp version=1 state=READY`, "msg=serving ready_versions=6", `level=INFO msg="model loaded on request" model=mlp`, "level=INFO msg=rollout model=mlp", "level=INFO msg=stopped"} {
			if !strings.Contains(log, want) {
				t.Errorf("$ %s: the server's log lacks %q:\n%s", s.command, want, log)
			}
		}
	}
}
