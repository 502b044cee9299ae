package k8s

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func canary() Options {
	o := Defaults("mlp", "registry.example.com/infer:1.0")
	o.Namespace, o.Versions = "serving", []Version{{1, 95}, {2, 5}}
	o.Replicas, o.Autoscaler, o.MaxReplicas, o.CPU = 2, HPA, 8, "2"
	return o
}

func single() Options {
	o := Defaults("text-encoder", "infer:dev")
	o.Versions, o.Gateway, o.ModelsClaim, o.CPU, o.Memory = []Version{{3, 1}}, "gw", "models", "500m", "512Mi"
	o.ModelFiles = []string{"config.yaml", "vocab.txt"}
	return o
}

func spotKEDA() Options {
	o := Defaults("tiny-gpt", "registry.example.com/infer:1.0")
	o.Namespace, o.Versions, o.Hostname = "serving", []Version{{1, 100}}, "gpt.example.com"
	o.ModelFiles = []string{"config.yaml", "vocab.txt"}
	o.Autoscaler, o.Replicas, o.MaxReplicas, o.Spot = KEDA, 0, 10, true
	o.DemandQuery = `sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~".*tiny-gpt.*"}[1m]))`
	return o
}

func TestRenderGolden(t *testing.T) {
	for name, o := range map[string]Options{
		"canary.yaml":    canary(),
		"single.yaml":    single(),
		"spot-keda.yaml": spotKEDA(),
	} {
		var b bytes.Buffer
		if err := Write(&b, o); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s differs from the golden file (go test ./pkg/deploy/k8s -update rewrites it):\n%s", name, b.String())
		}
	}
}

// The stream reads back, strictly, into the typed objects it came from,
// with the weights, probes, mounts and autoscaling in place.
func TestRenderReadsBack(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, canary()); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(b.String(), "---\n")
	if len(docs) != 8 { // 2 × (Deployment, Service, HPA) + HTTPRoute + GRPCRoute
		t.Fatalf("%d documents", len(docs))
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(docs[3]), &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if d.Kind != "Deployment" || d.Name != "mlp-v2" || d.Spec.Replicas != nil || c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" ||
		c.LivenessProbe.HTTPGet.Path != "/v2/health/live" || c.VolumeMounts[0].SubPath != "mlp/2" || c.VolumeMounts[0].MountPath != "/models/mlp/2" {
		t.Fatalf("deployment %+v", d)
	}
	var s corev1.Service
	if err := yaml.UnmarshalStrict([]byte(docs[4]), &s); err != nil || s.Spec.Selector["app.kubernetes.io/version"] != "2" {
		t.Fatalf("service %+v %v", s, err)
	}
	var h autoscalingv2.HorizontalPodAutoscaler
	if err := yaml.UnmarshalStrict([]byte(docs[5]), &h); err != nil || h.Spec.MaxReplicas != 8 || *h.Spec.MinReplicas != 2 || h.Spec.Metrics[0].Pods.Metric.Name != "infer_queue_requests" ||
		h.Spec.Metrics[1].Pods.Metric.Name != "infer_sequences" || h.Spec.Metrics[1].Pods.Metric.Selector.MatchLabels["state"] != "waiting" {
		t.Fatalf("autoscaler %+v %v", h, err)
	}
	var r gatewayv1.HTTPRoute
	if err := yaml.UnmarshalStrict([]byte(docs[6]), &r); err != nil {
		t.Fatal(err)
	}
	split := r.Spec.Rules[0]
	if *split.Matches[0].Path.Value != "/v2/models/mlp" || *split.Matches[1].Path.Value != "/v1" || len(split.BackendRefs) != 2 ||
		split.BackendRefs[0].Name != "mlp-v1" || *split.BackendRefs[0].Weight != 95 || *split.BackendRefs[1].Weight != 5 {
		t.Fatalf("split rule %+v", split)
	}
	if pinned := r.Spec.Rules[2]; *pinned.Matches[0].Path.Value != "/v2/models/mlp/versions/2" || pinned.BackendRefs[0].Name != "mlp-v2" {
		t.Fatalf("version rule %+v", pinned)
	}
}

func TestRenderNamesTheBadOption(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Model = "My_Model" }, `model "My_Model": not a Kubernetes name`},
		{func(o *Options) { o.Image = "" }, "image: empty"},
		{func(o *Options) { o.Versions = nil }, "versions: none"},
		{func(o *Options) { o.Versions = []Version{{1, 0}, {2, 0}} }, "every version has weight 0"},
		{func(o *Options) { o.Versions = []Version{{1, 1}, {1, 1}} }, "distinct versions"},
		{func(o *Options) { o.MaxReplicas = 1 }, "max replicas 1"},
		{func(o *Options) { o.Autoscaler = "vpa" }, `autoscaler "vpa"`},
		{func(o *Options) { o.Autoscaler, o.Replicas = NoAutoscaler, 0 }, "scale to zero needs --autoscaler keda"},
		{func(o *Options) { o.Autoscaler, o.Replicas = HPA, 0 }, "0 only with keda"},
		{func(o *Options) { o.Autoscaler, o.Replicas = KEDA, 0 }, "give a demand query"},
		{func(o *Options) { o.Autoscaler, o.Prometheus = KEDA, "" }, "prometheus: empty"},
		{func(o *Options) { o.ModelFiles = []string{"../etc"} }, `model file "../etc"`},
		{func(o *Options) { o.Hostname = "Not A Host" }, `hostname "Not A Host"`},
		{func(o *Options) { o.GracePeriod = 0 }, "grace period"},
		{func(o *Options) { o.Memory = "lots" }, `memory "lots"`},
	} {
		o := canary()
		tc.edit(&o)
		if err := Write(&bytes.Buffer{}, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}

// The admin API stays on each pod's loopback, exposed by no Service nor
// route; with a Secret named, the token comes from it, never inline.
func TestRenderKeepsTheAdminAPIPrivate(t *testing.T) {
	for _, secret := range []string{"", "infer-admin"} {
		o := canary()
		o.AdminTokenSecret = secret
		objs, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			switch x := obj.(type) {
			case *corev1.Service:
				for _, p := range x.Spec.Ports {
					if p.Port == AdminPort || p.TargetPort.IntValue() == AdminPort || p.Name == "admin" {
						t.Errorf("service %s exposes the admin port: %+v", x.Name, p)
					}
				}
			case *appsv1.Deployment:
				c := x.Spec.Template.Spec.Containers[0]
				if !strings.Contains(strings.Join(c.Args, " "), "--admin-host 127.0.0.1 --admin-port 8003") {
					t.Errorf("args %v: the admin port is not on loopback", c.Args)
				}
				switch {
				case secret == "" && len(c.Env) != 0:
					t.Errorf("env without a secret: %+v", c.Env)
				case secret != "" && (len(c.Env) != 1 || c.Env[0].Name != "INFER_ADMIN_TOKEN" || c.Env[0].Value != "" ||
					c.Env[0].ValueFrom.SecretKeyRef.Name != secret || c.Env[0].ValueFrom.SecretKeyRef.Key != AdminTokenKey):
					t.Errorf("env with secret %q: %+v", secret, c.Env)
				}
			}
		}
	}
	o := canary()
	o.AdminTokenSecret = "Not_A_Name"
	if _, err := Render(o); err == nil || !strings.Contains(err.Error(), "admin token secret") {
		t.Fatalf("a bad secret name: %v", err)
	}
}
