package main

import (
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

// onDemandListing is `infer models list --server ... -o json`, by model.
func onDemandListing(t *testing.T, server string) map[string]modelListing {
	t.Helper()
	out, err := run(t, "models", "list", "--server", server, "-o", "json")
	if err != nil {
		t.Fatalf("models list --server: %v\n%s", err, out)
	}
	var rows []modelListing
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("models list -o json: %v\n%s", err, out)
	}
	byName := map[string]modelListing{}
	for _, r := range rows {
		byName[r.Name] = r
	}
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

	out, err := run(t, "top", "--server", server, "--plain", "--count", "1", "--width", "160", "--admin-port", "0")
	if err != nil {
		t.Fatalf("top: %v\n%s", err, out)
	}
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

	text, err := run(t, "models", "list", "--server", server)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MEMORY", "LAST USED", "ago", "unloaded (keep_alive)"} {
		if !strings.Contains(text, want) {
			t.Errorf("models list --server lacks %q:\n%s", want, text)
		}
	}
	if _, err := run(t, "models", "list", dir, "--server", server); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("a repository and --server: %v, want an error saying to give one", err)
	}
}
