package loadgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTargets(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "body.json"), []byte(`{"x":1}`), 0o644)
	p := filepath.Join(dir, "targets.txt")
	os.WriteFile(p, []byte("# two targets\nPOST http://127.0.0.1:9/predict\nContent-Type: application/json\n@body.json\n\nGET http://127.0.0.1:9/healthz\n"), 0o644)
	got, err := ReadTargets(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Method != "POST" || string(got[0].Body) != `{"x":1}` || got[0].Header.Get("Content-Type") != "application/json" || got[1].URL != "http://127.0.0.1:9/healthz" {
		t.Fatalf("%+v", got)
	}
	for _, tc := range []struct{ body, want string }{
		{"", "holds no target"},
		{"FETCH\n", "line 1"},
		{"get http://x/\n", "line 1"},
		{"GET ftp://x/\n", "line 1"},
		{"GET http://x/\nno colon here\n", "line 2"},
		{"GET http://x/\n@missing.json\n", "line 2: body"},
	} {
		os.WriteFile(p, []byte(tc.body), 0o644)
		if _, err := ReadTargets(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
	}
}
