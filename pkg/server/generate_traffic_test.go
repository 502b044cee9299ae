package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A text model's traffic policy routes what its text endpoints are asked
// as it routes infer calls: OpenAI completions, chat and embeddings and
// Triton's generate all go to the version the policy weighs (a rollout of
// a generator moves its traffic, and a load that brings a new version
// leaves traffic where it was). A shadow, which mirrors nothing
// generated, is refused naming the model.
func TestTextEndpointsFollowTheTrafficPolicy(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tiny-gpt", "text-encoder"} {
		copyModel(t, filepath.Join(bundled, name), dir)
		if err := os.CopyFS(filepath.Join(dir, name, "2"), os.DirFS(filepath.Join(dir, name, "1"))); err != nil {
			t.Fatal(err)
		}
	}
	s, hs := start(t, openRepo(t, dir), Options{})
	admin := adminBase(t, s, hs)
	for _, name := range []string{"tiny-gpt", "text-encoder"} {
		if r := call(t, "PUT", admin+"/v2/admin/models/"+name+"/traffic", []byte(`{"weights":{"1":1,"2":0}}`), nil); r.status != 200 {
			t.Fatalf("%s's policy: %d %s", name, r.status, r.body)
		}
	}
	for _, c := range []struct {
		path string
		body any
	}{
		{"/v1/completions", map[string]any{"model": "tiny-gpt", "prompt": "hello", "max_tokens": 2}},
		{"/v1/chat/completions", map[string]any{"model": "tiny-gpt", "messages": []map[string]string{{"role": "user", "content": "hi"}}, "max_tokens": 2}},
		{"/v2/models/tiny-gpt/generate", map[string]any{"text_input": "hello", "max_tokens": 2}},
		{"/v1/embeddings", map[string]any{"model": "text-encoder", "input": "hello"}},
	} {
		if r := postJSON(t, hs.URL+c.path, c.body); r.status != 200 {
			t.Fatalf("%s: %d %s", c.path, r.status, r.body)
		}
	}
	metrics := scrape(t, s)
	for _, want := range []string{
		`infer_requests_total{model="tiny-gpt",outcome="success",protocol="http",version="1"} 3`,
		`infer_requests_total{model="text-encoder",outcome="success",protocol="http",version="1"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("want %s", want)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "infer_requests_total{") && strings.Contains(line, `version="2"`) && !strings.HasSuffix(line, " 0") {
			t.Errorf("the version the policy gives no traffic answered: %s", line)
		}
	}

	status, msg := adminError(t, "PUT", admin+"/v2/admin/models/tiny-gpt/traffic", `{"weights":{"1":1},"shadow":{"version":2,"fraction":0.5}}`)
	if status != 400 || !strings.Contains(msg, "shadow") || !strings.Contains(msg, "text generator") {
		t.Fatalf("a shadow of a generator: %d %q, want 400 naming the shadow and the generator", status, msg)
	}
}
