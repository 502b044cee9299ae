package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeployRender(t *testing.T) {
	out := filepath.Join(t.TempDir(), "mlp.yaml")
	if msg, err := run(t, "deploy", "render", "--model", "mlp", "--image", "registry.example.com/infer:1.0", "--weights", "1=95,2=5", "--max-replicas", "4", "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Deployment\n", "name: mlp-v2\n", "kind: HorizontalPodAutoscaler\n", "kind: HTTPRoute\n", "weight: 95\n", "weight: 5\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("manifests lack %q", want)
		}
	}
	// Without --weights: the bundled repository's versions, the newest at 100.
	msg, err := run(t, "deploy", "render", "--model", "mlp", "--image", "x:1")
	if err != nil || !strings.Contains(msg, "name: mlp-v1\n") || !strings.Contains(msg, "weight: 100\n") {
		t.Fatalf("%v\n%s", err, msg)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", "mlp"}, `required flag(s) "image"`},
		{[]string{"--model", "ghost", "--image", "x"}, `model "ghost" in bundled models`},
		{[]string{"--model", "mlp", "--image", "x", "--weights", "1=a"}, `--weights "1=a"`},
		{[]string{"--model", "mlp", "--image", "x", "--weights", "1=0"}, "every version has weight 0"},
		{[]string{"--model", "mlp", "--image", "x", "--cpu", "fast"}, `cpu "fast"`},
	} {
		if _, err := run(t, append([]string{"deploy", "render"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
