package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mlpJSON is one request for mlp, as JSON tensors.
var mlpJSON = `{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[` + strings.Repeat("0.5,", 783) + `0.5]}]}`

// listing runs `infer models list ARGS -o json` and returns its rows and
// the rows by model name.
func listing(t *testing.T, args ...string) ([]modelListing, map[string]modelListing) {
	t.Helper()
	out, err := run(t, append(append([]string{"models", "list"}, args...), "-o", "json")...)
	if err != nil {
		t.Fatalf("models list %v: %v\n%s", args, err, out)
	}
	return listingRows(t, []byte(out))
}

// listingRows decodes the JSON of `infer models list`.
func listingRows(t *testing.T, out []byte) ([]modelListing, map[string]modelListing) {
	t.Helper()
	var rows []modelListing
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("models list -o json: %v\n%s", err, out)
	}
	byName := map[string]modelListing{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	return rows, byName
}

// serverListing is `infer models list --server SERVER -o FORMAT`'s
// output. It is called directly, not through the command, whose logger
// would take the server's logs (the server runs in this process).
func serverListing(t *testing.T, server, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := listServerModels(context.Background(), server, &b, &outputFlag{format: format, formats: []string{formatText, formatJSON}}); err != nil {
		t.Fatalf("models list --server: %v", err)
	}
	return b.Bytes()
}

// onDemandListing is `infer models list --server ... -o json`, by model.
func onDemandListing(t *testing.T, server string) map[string]modelListing {
	t.Helper()
	_, byName := listingRows(t, serverListing(t, server, formatJSON))
	return byName
}

// On a server in on-demand mode, `infer models list --server` and `infer
// top` show every version the repository holds: unloaded with no memory
// before its first request; loaded, with its measured memory and its last
// use, after; unloaded again, its last use kept, once its keep_alive has
// passed.
func TestModelViewsFollowOnDemandLoads(t *testing.T) {
	dir := t.TempDir()
	addVersion(t, dir, "1", "mlp")
	// A second model, idle after a second; mlp stays for the server's
	// keep_alive of five minutes.
	data, err := os.ReadFile(filepath.Join(dir, "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "brief", "1"), 0o755)
	os.WriteFile(filepath.Join(dir, "brief", "1", "model.onnx"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "brief", "config.yaml"), []byte("keep_alive: 1s\n"), 0o644)

	if _, err := run(t, "models", "list", dir, "--server", "localhost:1"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("a repository and --server: %v, want an error saying to give one", err)
	}

	addrs, stop, done := startServeAddrs(t, serveOptions{path: dir, modelControlMode: "on-demand", keepAlive: 5 * time.Minute})
	defer func() { stop(); <-done }()
	server := "http://" + addrs["HTTP"]

	before := onDemandListing(t, server)
	for _, name := range []string{"mlp", "brief"} {
		l, ok := before[name]
		if !ok || l.State != "UNAVAILABLE" || l.LoadedBytes != 0 || !l.LastUsed.IsZero() || !strings.Contains(l.Reason, "first request") {
			t.Fatalf("%s before any request: %+v, want unloaded, no memory, never used, loading at its first request", name, l)
		}
	}

	sent := time.Now()
	for _, name := range []string{"mlp", "brief"} {
		resp, err := http.Post(server+"/v2/models/"+name+"/infer", "application/json", strings.NewReader(mlpJSON))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: first request: %d", name, resp.StatusCode)
		}
	}
	after := onDemandListing(t, server)
	if l := after["mlp"]; l.State != "READY" || l.LoadedBytes <= 0 || l.LastUsed.Before(sent.Add(-time.Second)) {
		t.Fatalf("mlp after its first request: %+v, want READY with its memory and a last use since the request", l)
	}

	var top bytes.Buffer
	if err := runTop(context.Background(), topOptions{servers: []string{server}, interval: 2 * time.Second, window: 2 * time.Second,
		plain: true, count: 1, width: 160}, &top); err != nil {
		t.Fatalf("top: %v\n%s", err, top.String())
	}
	out := top.String()
	if !strings.Contains(out, "MEM") || !strings.Contains(out, "IDLE") {
		t.Fatalf("top shows no memory or idle columns:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "mlp" && !strings.Contains(line, "M ") {
			t.Errorf("top's mlp row shows no memory in MiB: %q", line)
		}
	}

	// brief unloads once its keep_alive has passed; the sweeper looks
	// every second. Waiting for that is bounded generously: what is
	// checked is the view of the unload, not its timing.
	deadline := time.Now().Add(60 * time.Second)
	var l modelListing
	for l = onDemandListing(t, server)["brief"]; l.State == "READY" && time.Now().Before(deadline); l = onDemandListing(t, server)["brief"] {
		time.Sleep(100 * time.Millisecond)
	}
	if l.State != "UNAVAILABLE" || l.LoadedBytes != 0 || l.LastUsed.IsZero() || !strings.Contains(l.Reason, "keep_alive") {
		t.Fatalf("brief past its keep_alive: %+v, want unloaded (keep_alive), no memory, its last use kept", l)
	}
	if m := onDemandListing(t, server)["mlp"]; m.State != "READY" {
		t.Fatalf("mlp, within its keep_alive: %+v, want still loaded", m)
	}

	text := string(serverListing(t, server, formatText))
	for _, want := range []string{"MEMORY", "LAST USED", "ago", "unloaded (keep_alive)"} {
		if !strings.Contains(text, want) {
			t.Errorf("models list --server lacks %q:\n%s", want, text)
		}
	}
}
