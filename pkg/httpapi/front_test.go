package httpapi

import (
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// Only a POST to an infer path takes the hot path; anything else, however
// close, is the net/http mux's to route (or refuse).
func TestInferPath(t *testing.T) {
	for _, c := range []struct {
		method, uri    string
		model, version string
		ok             bool
	}{
		{"POST", "/v2/models/mlp/infer", "mlp", "", true},
		{"POST", "/v2/models/mlp/versions/2/infer?x=1", "mlp", "2", true},
		{"POST", "/v2/models/mlp/versions//infer", "", "", false},
		{"POST", "/v2/models//infer", "", "", false},
		{"POST", "/v2/models/mlp/ready/infer", "", "", false},
		{"POST", "/v2/models/mlp/versions/2/x/infer", "", "", false},
		{"POST", "/v2/models/mlp/generate", "", "", false},
		{"GET", "/v2/models/mlp/infer", "", "", false},
		{"POST", "/v2/models/infer", "", "", false},
		// Spellings the net/http mux resolves, as it does elsewhere.
		{"POST", "/v2/models/%6dlp/infer", "", "", false},
		{"POST", "/v2/models/mlp%2Fversions%2F1/infer", "", "", false},
		{"POST", "/v2/models/x/../mlp/infer", "", "", false},
		{"POST", "//v2/models/mlp/infer", "", "", false},
		{"POST", "http://host/v2/models/mlp/infer", "", "", false},
	} {
		var fc fasthttp.RequestCtx
		fc.Request.Header.SetMethod(c.method)
		fc.Request.SetRequestURI(c.uri)
		modelName, versionName, ok := inferPath(&fc)
		model, version := string(modelName), string(versionName)
		if model != c.model || version != c.version || ok != c.ok {
			t.Errorf("%s %s: %q %q %v, want %q %q %v", c.method, c.uri, model, version, ok, c.model, c.version, c.ok)
		}
	}
}

// A parse error's answer names the fault, not the request's bytes.
func TestFaultQuotesNoRequestBytes(t *testing.T) {
	for in, want := range map[string]string{
		`error when reading request headers: duplicate content-length header: buffer size=120, contents: "GET / HTTP/1.1\r\nAuthorization: Bearer SECRET"`: "error when reading request headers: duplicate content-length header",
		`cannot find http request method in "Bearer SECRET"`: "cannot find http request method in",
		"plain": "plain",
	} {
		if got := fault(errors.New(in)); got != want {
			t.Errorf("fault(%q) = %q, want %q", in, got, want)
		}
	}
}
