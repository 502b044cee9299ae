package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/infer-serving/infer/pkg/deploy/k8s"
)

func TestDeployRender(t *testing.T) {
	out := filepath.Join(t.TempDir(), "mlp.yaml")
	msg, err := run(t, "deploy", "render", "--model", "mlp", "--image", "registry.example.com/infer:1.0", "--weights", "1=95,2=5", "--max-replicas", "4", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	// The bundled mlp has no version 2: said, since its pods would mount
	// a folder the volume may not hold; version 1 is not mentioned.
	if !strings.Contains(msg, `warning: version 2 of "mlp" has no folder in bundled models: its Deployment mounts mlp/2`) || strings.Contains(msg, "version 1 of") {
		t.Errorf("render of a version the repository lacks: %q, want one warning naming version 2", msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: Deployment\n", "name: mlp-v2\n", "kind: HorizontalPodAutoscaler\n", "kind: HTTPRoute\n", "kind: GRPCRoute\n", "weight: 95\n", "weight: 5\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("manifests lack %q", want)
		}
	}
	// Without --weights: the bundled repository's versions, the newest at 100.
	msg, err = run(t, "deploy", "render", "--model", "mlp", "--image", "x:1")
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
		{[]string{"--model", "mlp", "--image", "x", "--autoscaler", "keda", "--replicas", "0", "--max-replicas", "4"}, "give a demand query"},
		{[]string{"--model", "ghost", "--image", "x", "--weights", "1=1"}, "--model-files naming the files"},
	} {
		if _, err := run(t, append([]string{"deploy", "render"}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// What a pod of each bundled model's newest version sees: the rendered
// Deployment's mounts laid out from the repository, its container's
// arguments run as a process of this binary (only the ports moved to
// free loopback ones, since tests share the machine), its startup probe's
// path answering 200, and every model it loads READY: text-encoder with
// its tokenizer, tiny-gpt with its vocabulary and configuration. Then
// SIGTERM, as the kubelet sends after the pre-stop wait, ends it cleanly.
func TestDeploymentServesEveryBundledModelAsRendered(t *testing.T) {
	src := filepath.Join("..", "..", "testdata", "models")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		model := e.Name()
		t.Run(model, func(t *testing.T) {
			out, err := run(t, "deploy", "render", "--model", model, "--image", "infer:test", "--repository", src)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var d appsv1.Deployment
			for _, doc := range strings.Split(out, "---\n") {
				if strings.Contains(doc, "kind: Deployment\n") {
					if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
						t.Fatal(err)
					}
					break // the oldest version's: each bundled model has one
				}
			}
			c := d.Spec.Template.Spec.Containers[0]
			if c.StartupProbe == nil || c.StartupProbe.HTTPGet.Path != "/v2/health/ready" {
				t.Fatalf("no startup probe on readiness: %+v", c.StartupProbe)
			}
			// The pod's file system: each mount of the models claim, copied
			// from the repository at its subPath to its mountPath.
			root := t.TempDir()
			for _, m := range c.VolumeMounts {
				if m.Name != "models" {
					continue
				}
				rel, ok := strings.CutPrefix(m.MountPath, k8s.ModelsRoot+"/")
				if !ok {
					t.Fatalf("mount %s outside %s", m.MountPath, k8s.ModelsRoot)
				}
				if err := os.CopyFS(filepath.Join(root, rel), os.DirFS(filepath.Join(src, m.SubPath))); err != nil {
					// A file, not a folder.
					b, err := os.ReadFile(filepath.Join(src, m.SubPath))
					if err != nil {
						t.Fatal(err)
					}
					os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755)
					if err := os.WriteFile(filepath.Join(root, rel), b, 0o444); err != nil {
						t.Fatal(err)
					}
				}
			}
			args := slices.Clone(c.Args)
			for i, a := range args {
				if a == k8s.ModelsRoot {
					args[i] = root
				}
			}
			ports := freePorts(t, 4)
			args = append(args, "--host", "127.0.0.1", "--http-port", strconv.Itoa(ports[0]), "--grpc-port", strconv.Itoa(ports[1]),
				"--metrics-port", strconv.Itoa(ports[2]), "--admin-port", strconv.Itoa(ports[3]))
			base := "http://127.0.0.1:" + strconv.Itoa(ports[0])
			// The kubelet's startup probe: the readiness path, for up to the
			// budget the manifest grants.
			probe := c.StartupProbe
			budget := time.Duration(probe.PeriodSeconds*probe.FailureThreshold) * time.Second
			cmd, logs := inferProcess(t, base+probe.HTTPGet.Path, budget, args...)
			resp, err := http.Post(base+"/v2/repository/index", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			var index []struct{ Name, Version, State, Reason string }
			err = json.NewDecoder(resp.Body).Decode(&index)
			resp.Body.Close()
			if err != nil || len(index) != 1 {
				t.Fatalf("index %+v %v: want the one version the pod mounts", index, err)
			}
			if m := index[0]; m.Name != model || m.State != "READY" {
				t.Fatalf("%+v, want %s READY:\n%s", m, model, logs.String())
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after SIGTERM: %v\n%s", err, logs.String())
			}
		})
	}
}

// With --repository, each version's pods request and are limited to the
// server's baseline plus its measured memory with headroom: for mlp, more
// than the baseline and its file's weights with headroom, less than the
// flat default, and what stderr says was measured. --memory overrides it.
func TestDeployRenderSizesMemoryFromTheModel(t *testing.T) {
	src := filepath.Join("..", "..", "testdata", "models")
	memory := func(args ...string) (req, lim int64, msg string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "mlp.yaml")
		msg, err := run(t, append([]string{"deploy", "render", "--model", "mlp", "--image", "x:1", "--repository", src, "--out", out}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, msg)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict([]byte(strings.Split(string(b), "---\n")[0]), &d); err != nil {
			t.Fatal(err)
		}
		r := d.Spec.Template.Spec.Containers[0].Resources
		return r.Requests.Memory().Value(), r.Limits.Memory().Value(), msg
	}
	file, err := os.Stat(filepath.Join(src, "mlp", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	req, lim, msg := memory()
	floor := k8s.ServerBaseline + int64(float64(file.Size())*k8s.MemoryHeadroom)
	if req != lim || req < floor || req >= 1<<30 || req%(1<<20) != 0 {
		t.Fatalf("memory request %d, limit %d: want equal whole MiB in [%d, 1GiB)\n%s", req, lim, floor, msg)
	}
	_, said, found := strings.Cut(msg, "mlp version 1: measured ")
	line, _, _ := strings.Cut(said, "\n")
	if !found || !strings.HasSuffix(line, " = "+strconv.FormatInt(req>>20, 10)+"Mi") {
		t.Fatalf("stderr does not say what was measured and how it sized %dMi:\n%s", req>>20, msg)
	}

	if msg, err := run(t, "deploy", "render", "--model", "mlp", "--image", "x:1", "--repository", src, "--weights", "1=1,9=1"); err == nil ||
		!strings.Contains(err.Error(), `model "mlp" version 9: not in`) || !strings.Contains(err.Error(), "give --memory") {
		t.Fatalf("a version not in the repository: %v\n%s", err, msg)
	}
	req, lim, msg = memory("--memory", "3Gi")
	if req != 3<<30 || lim != 3<<30 || strings.Contains(msg, "measured") {
		t.Fatalf("--memory 3Gi: request %d, limit %d\n%s", req, lim, msg)
	}
}
