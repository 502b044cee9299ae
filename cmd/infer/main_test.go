package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"

	"go.uber.org/goleak"
)

// run executes the CLI with args and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestModelsRunOnBundledModels(t *testing.T) {
	out, err := run(t, "models", "run", "--requests", "16", "--concurrency", "4")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"mlp (version 1", "text-encoder (version 1", "multi-io (version 1", "fixed-shape (version 1",
		"probabilities FP32 [1 10]", "embedding FP32 [1 128]", "halfs_plus_one FP16 [1 4]", "transposed FP32 [3 2]", "bf16_out BF16 [1 2]",
		"batch sizes:", "queue", "infer"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The generator's random weights are said before its text is shown.
	gen := strings.Index(out, "tiny-gpt (version 1")
	if gen < 0 || !strings.Contains(out[gen:], "\n  its weights are random, not trained") || strings.Index(out[gen:], "its weights are random") > strings.Index(out[gen:], "->") {
		t.Errorf("the generator's text comes without a word that its weights are random:\n%s", out[max(gen, 0):])
	}
}

func TestModelsListJSON(t *testing.T) {
	rows, byName := listing(t, "--log-level", "error")
	mlp := byName["mlp"]
	if len(rows) != 6 || mlp.MaxBatchSize == nil || *mlp.MaxBatchSize != 64 || byName["tiny-gpt"].MaxBatchSize == nil || *byName["tiny-gpt"].MaxBatchSize != 16 || mlp.Inputs[0].Shape[1] != 784 || byName["all-types"].State != "READY" || byName["tiny-gpt"].Device != "cpu" || mlp.LoadedBytes <= 0 || !mlp.LastUsed.IsZero() {
		t.Fatalf("listing %+v", rows)
	}
}

func TestModelsRunReportsBrokenModels(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "broken", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken", "1", "model.onnx"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "models", "run", dir)
	if err == nil || !strings.Contains(out, "broken/1/model.onnx") {
		t.Fatalf("err %v, output %q: want the broken file named", err, out)
	}
	if _, err := run(t, "models", "run", filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("missing path: err %v", err)
	}
	if _, err := run(t, "models", "run", "--model", "nope"); err == nil || !strings.Contains(err.Error(), `--model: model not found: "nope"`) || !strings.Contains(err.Error(), "mlp, multi-io") {
		t.Fatalf("unknown --model: err %v, want it named and the models held listed", err)
	}
	// --model loads that model alone.
	if out, err := run(t, "models", "run", "--model", "fixed-shape", "--requests", "2"); err != nil || !strings.Contains(out, "fixed-shape (version 1") || strings.Contains(out, "model=mlp version") {
		t.Fatalf("--model fixed-shape: %v\n%s", err, out)
	}
	if _, err := run(t, "models", "run", "--requests", "0"); err == nil || !strings.Contains(err.Error(), "--requests") {
		t.Fatalf("--requests 0: err %v", err)
	}
}

func TestModelsConfigPrintsWhatIsInEffect(t *testing.T) {
	out, err := run(t, "models", "config", "--model", "mlp", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := runner.ParseConfig(strings.NewReader(out))
	if err != nil {
		t.Fatalf("printed config does not parse back: %v\n%s", err, out)
	}
	if *cfg.MaxBatchSize != 64 || cfg.DynamicBatching.MaxQueueSize != 1024 || cfg.Device != "cpu" || *cfg.Warmup.Runs != 2 {
		t.Fatalf("config in effect %+v from:\n%s", cfg, out)
	}
	// A text generator shows the limits that apply to it: as many
	// prompts a request as it decodes together, and a prompt as long as
	// its context.
	out, err = run(t, "models", "config", "--model", "tiny-gpt", "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = runner.ParseConfig(strings.NewReader(out)); err != nil || *cfg.MaxBatchSize != 16 || cfg.Tokenizer.MaxLength != 512 {
		t.Fatalf("%v: the generator's config in effect:\n%s", err, out)
	}
	if _, err := run(t, "models", "config"); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("missing --model: err %v", err)
	}
}

func TestVersionReportsTheRuntime(t *testing.T) {
	out, err := run(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var info versionInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.ONNXRuntime, "1.24") || info.Go == "" || info.Version == "" {
		t.Fatalf("version info %+v", info)
	}
}

func TestCompletion(t *testing.T) {
	out, err := run(t, "completion", "bash")
	if err != nil || !strings.Contains(out, "__start_infer") {
		t.Fatalf("bash completion: %v", err)
	}
}

// runMainEnv, set in a child process's environment, makes the test binary
// run infer itself: tests that must kill a real server process use it.
const runMainEnv = "INFER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	runner.ServeHostIfChild()
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	if _, err := runner.InitRuntime(""); err != nil {
		os.Stderr.WriteString("cmd tests need ONNX Runtime: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	// The tests' own clients keep idle connections; what must not outlive
	// a test is the servers', load generators' and dashboards' goroutines.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			// teatest waits for a SIGINT for the life of the test binary.
			goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest/v2.NewTestModel.func2"),
			// fasthttp's worker pool cleaner ends within its sleep (10 s)
			// of its server; its Date header clock runs for the process.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		); err != nil {
			os.Stderr.WriteString("goroutines left behind: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// A listing or a configuration is the command's answer: the model loads
// behind it are not logged unless asked, and a model the repository
// lacks is named beside the ones it has.
func TestModelsAnswersAreQuietAndNameTheModels(t *testing.T) {
	out, err := run(t, "models", "list")
	if err != nil || strings.Contains(out, "model loaded") || !strings.Contains(out, "mlp") {
		t.Fatalf("models list: %v\n%s\nwant the listing alone", err, out)
	}
	if out, _ := run(t, "models", "list", "--log-level", "info"); !strings.Contains(out, "model loaded") {
		t.Fatalf("models list --log-level info logs no load:\n%s", out)
	}
	_, err = run(t, "models", "config", "-m", "nosuch")
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "the repository has") || !strings.Contains(err.Error(), "mlp") {
		t.Fatalf("models config -m nosuch: %v, want the names the repository has", err)
	}
}

// A model that failed to load keeps its row of the listing short (its
// reason cut, the version "-" when it has none) and its whole reason
// comes under the table: a config error listing every key made each row
// hundreds of characters wide.
func TestModelsListKeepsAFailedModelsRowShort(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"mlp", "bad"} {
		os.MkdirAll(filepath.Join(dir, m, "1"), 0o755)
		os.WriteFile(filepath.Join(dir, m, "1", "model.onnx"), data, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "bad", "config.yaml"), []byte("max_batch_sise: 4\n"), 0o644)
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"models", "list", dir})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(out.String(), "\n")
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, "bad ") {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 3 || f[1] != "-" || f[2] != "UNAVAILABLE" || len([]rune(row)) > 160 || !strings.Contains(row, "(below)") {
		t.Fatalf("bad's row %q: want version -, UNAVAILABLE, cut within 160 characters", row)
	}
	if !strings.Contains(out.String(), "\nbad: read "+filepath.Join(dir, "bad", "config.yaml")+": line 1: max_batch_sise: no such key (the keys here are max_batch_size,") {
		t.Fatalf("the whole reason is not under the table:\n%s", out.String())
	}
}

// tinyGPTWith copies the bundled tiny-gpt to a repository of its own as
// model gpt, its config.yaml changed by edit, and returns the repository.
func tinyGPTWith(t *testing.T, edit func(config string) string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "testdata", "models", "tiny-gpt")
	for _, f := range []string{"1/model.onnx", "vocab.txt", "config.yaml"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "config.yaml" {
			data = []byte(edit(string(data)))
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, "gpt", f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "gpt", f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A text generator configured for more positions than its decoder has
// fails its load naming generation.max_positions (a sequence of the
// longest length is run at load), where it loaded READY and answered every
// prompt past the decoder's 512 positions with 500; one whose default
// max_tokens its key/value budget cannot hold fails naming that, where it
// loaded and refused every request that named no max_tokens.
func TestGeneratorPastItsPositionsFailsItsLoad(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"max_positions: 512", "max_positions: 4096", "generation.max_positions 4096: a sequence of 4096 tokens fails in the decoder"},
		{"default_max_tokens: 64", "default_max_tokens: 600\n  kv_cache_bytes: 1Mi", "generation.default_max_tokens 600: generation.kv_cache_bytes holds 512 positions"},
	} {
		dir := tinyGPTWith(t, func(config string) string {
			if c.from == "default_max_tokens: 64" { // past what 1 MiB holds, within the positions
				config = strings.Replace(config, "  kv_cache_bytes: 67108864", "", 1)
				config = strings.Replace(config, "max_positions: 512", "max_positions: 1024", 1)
			}
			return strings.Replace(config, c.from, c.to, 1)
		})
		out, err := run(t, "models", "list", dir)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: err %v, want the load refused saying %q:\n%s", c.to, err, c.want, out)
		}
	}
}

// A bundled model's name given where a path goes says how to run it.
func TestModelsRunNamesTheModelFlag(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // no tiny-gpt folder here
	if _, err := run(t, "models", "run", "tiny-gpt"); err == nil || !strings.Contains(err.Error(), "to run the bundled model tiny-gpt: infer models run -m tiny-gpt") {
		t.Fatalf("err %v, want the -m form", err)
	}
}
