package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/infer-serving/infer/pkg/runner"
)

// FuzzRepositoryLoad posts fuzzed model names and bodies to
// POST /v2/repository/models/{model}/load on a real server over the
// bundled repository. Whatever is sent, the answer is 200, 400 or 404,
// never a failure of the server's own; 200 only for a model the
// repository holds; and no model outside it ever becomes ready.
func FuzzRepositoryLoad(f *testing.F) {
	repo, err := runner.Open(bundled, runner.LoadOptions{})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(repo, Options{})
	if err != nil {
		f.Fatal(err)
	}
	hs := httptest.NewServer(s.AdminHandler()) // the admin listener, where loads are served
	f.Cleanup(func() { hs.Close(); s.Close(); repo.Close() })
	bundledModels := map[string]bool{}
	for _, st := range repo.Index() {
		bundledModels[st.Name] = true
	}
	client := &http.Client{}

	for _, seed := range []struct{ name, body string }{
		{"mlp", ""},
		{"mlp", `{"parameters":{"config":"{}"}}`},
		{"no-such-model", `{}`},
		{"..", ""},
		{".", `{"parameters":{"file:1/model.onnx":"AAAA"}}`},
		{"../../etc", ""},
		{"mlp/../mlp", ""},
		{"a\x00b", "\xff\xfe"},
		{"%2e%2e", `{"parameters":`},
	} {
		f.Add(seed.name, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		if name == "" {
			return // no {model} segment: another route
		}
		req, err := http.NewRequest("POST", hs.URL+"/v2/repository/models/"+url.PathEscape(name)+"/load", bytes.NewReader(body))
		if err != nil {
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("load %q: %v", name, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			if !bundledModels[name] {
				t.Fatalf("load %q: 200 for a model the repository does not hold", name)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			// Refused, or (for names with "." segments) redirected by the
			// mux to a cleaned path it then serves as its own request.
		default:
			t.Fatalf("load %q: %d %s", name, resp.StatusCode, answer)
		}
		if resp.StatusCode == http.StatusBadRequest && !json.Valid(answer) {
			t.Fatalf("load %q: error body %q is not JSON", name, answer)
		}
		for _, st := range repo.Index() {
			if st.State == runner.StateReady && !bundledModels[st.Name] {
				t.Fatalf("load %q: model %q outside the repository is ready", name, st.Name)
			}
		}
	})
}
