package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ReadTargets reads a targets file for plain HTTP load: blocks separated by
// blank lines, each a "METHOD URL" line, then any "Name: value" header
// lines, then optionally "@path" naming a body file (relative to the
// targets file). Lines starting with # are comments.
//
//	POST http://localhost:8080/predict
//	Content-Type: application/json
//	@body.json
//
//	GET http://localhost:8080/healthz
func ReadTargets(path string) ([]HTTPRequest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("targets file: %w", err)
	}
	var out []HTTPRequest
	var cur *HTTPRequest
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		where := fmt.Sprintf("targets file %s line %d", path, n)
		switch {
		case strings.HasPrefix(line, "#"):
		case line == "":
			cur = nil
		case cur == nil:
			method, rawURL, ok := strings.Cut(line, " ")
			u, err := url.Parse(strings.TrimSpace(rawURL))
			if !ok || err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || strings.ToUpper(method) != method {
				return nil, fmt.Errorf("%s: %q: want METHOD http://host/path", where, line)
			}
			out = append(out, HTTPRequest{Method: method, URL: u.String(), Header: http.Header{}})
			cur = &out[len(out)-1]
		case strings.HasPrefix(line, "@"):
			file := line[1:]
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(path), file)
			}
			body, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("%s: body: %w", where, err)
			}
			cur.Body = body
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("%s: %q: want a header 'Name: value' or @body-file", where, line)
			}
			cur.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("targets file %s holds no target", path)
	}
	return out, nil
}
