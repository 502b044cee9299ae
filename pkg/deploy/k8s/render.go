// Package k8s renders the Kubernetes manifests that serve a model's
// versions behind one route: a Deployment and a Service per version,
// Gateway API routes splitting HTTP (/v2 and the OpenAI-compatible /v1)
// and gRPC traffic by weight, and optionally an autoscaler per version on
// waiting work (a KEDA ScaledObject, or a HorizontalPodAutoscaler) and, on
// spot capacity, tolerations, affinity and a PodDisruptionBudget. Every
// object is built from typed API structs (k8s.io/api, Gateway API, and
// ScaledObject, which mirrors KEDA's CRD), never from text templates.
package k8s

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Ports infer serve listens on in the pod.
const (
	HTTPPort    = 8000
	GRPCPort    = 8001
	MetricsPort = 8002
	// AdminPort is the admin API's, on the pod's loopback only: no Service
	// exposes it; kubectl port-forward reaches it.
	AdminPort = 8003
)

// ModelsRoot is where the pod sees the model repository: the container
// runs `infer serve ModelsRoot`.
const ModelsRoot = "/models"

// AdminTokenKey is the key of the admin token in AdminTokenSecret.
const AdminTokenKey = "token"

// Autoscaler kinds.
const (
	NoAutoscaler = ""
	HPA          = "hpa"  // autoscaling/v2 HorizontalPodAutoscaler on Pods metrics (a custom-metrics adapter serves them)
	KEDA         = "keda" // a KEDA ScaledObject with Prometheus triggers
)

// Version is one model version and its share of the route's traffic.
type Version struct {
	Number int64
	Weight int32 // relative; 0 keeps the version deployed with no traffic
}

// Options say what to render.
type Options struct {
	Model     string
	Namespace string // empty: none set, kubectl's current one applies
	Image     string // a container image holding infer and ONNX Runtime
	Versions  []Version
	// Gateway is the Gateway API Gateway the routes attach to.
	Gateway string
	// Hostname, when set, is the routes' only hostname. The OpenAI
	// endpoints (/v1) and gRPC name the model in the request's body, which
	// no route can match on: two models on one Gateway need a hostname
	// each.
	Hostname string
	// ModelsClaim is the PersistentVolumeClaim holding the model
	// repository (<model>/<version>/model.onnx beside <model>/config.yaml).
	// Each version's pods mount the model's own files (ModelFiles) and
	// their version's folder, laid out as the repository is.
	ModelsClaim string
	// ModelFiles are the files at the top of the model's folder (config.yaml,
	// a tokenizer's vocab.txt): every version's pods need them.
	ModelFiles []string
	// Replicas is the pods per version without an autoscaler, and the
	// autoscaler's minimum with one (0 there: scale to zero).
	Replicas int32
	// Autoscaler is NoAutoscaler, HPA or KEDA; MaxReplicas bounds it.
	Autoscaler  string
	MaxReplicas int32
	// WaitingTarget is the waiting work per pod the autoscaler holds:
	// queued requests plus text-generation sequences waiting for
	// admission (infer_queue_requests + infer_sequences{state="waiting"}).
	WaitingTarget string
	// QueueAgeTarget (KEDA) scales out when the oldest queued request has
	// waited longer than this (infer_queue_oldest_age_seconds).
	QueueAgeTarget time.Duration
	// Activation (KEDA, with Replicas 0) is the waiting work above which a
	// version scaled to zero gets its first pod.
	Activation string
	// DemandQuery (KEDA, required with Replicas 0) is a PromQL query of
	// the requests arriving for the model measured outside its pods (the
	// Gateway's request rate for its route, say): with no pod left there is
	// no queue to read, so only this can wake a version scaled to zero.
	DemandQuery string
	// Prometheus (KEDA) is the address KEDA queries.
	Prometheus string
	// CPU and Memory are each container's requests; Memory is its memory
	// limit too, so the pod is never OOM-killed for memory it was promised.
	// No CPU limit: throttling a model's batches only adds latency.
	CPU, Memory string
	// VersionMemory, keyed by version number, takes the place of Memory
	// for the versions it names: MemoryFor their measured memory.
	VersionMemory map[int64]string
	// Spot places pods on spot (preemptible) nodes: tolerations of the
	// clouds' spot taints, a preference for spot nodes, pods spread over
	// nodes, and a PodDisruptionBudget.
	Spot bool
	// PreStop is how long a terminating pod keeps serving before infer
	// gets SIGTERM, so that endpoints drop it first; DrainDelay and
	// GracePeriod are infer serve's --drain-delay and --grace-period.
	// The termination grace period covers all three.
	PreStop, DrainDelay, GracePeriod time.Duration
	// AdminTokenSecret, when set, names a Secret whose "token" key is the
	// admin token: the server then requires it on every admin call, and
	// serves the admin API to its holders on the public ports too.
	// Without it the admin API is on the pod's loopback only.
	AdminTokenSecret string
}

// Defaults returns the options every field of which render as they are,
// for model and image; callers set versions and what they change.
func Defaults(model, image string) Options {
	return Options{
		Model: model, Image: image, Gateway: "infer", ModelsClaim: "infer-models", Replicas: 1,
		WaitingTarget: "4", QueueAgeTarget: 100 * time.Millisecond, Activation: "0",
		Prometheus: "http://prometheus.monitoring.svc:9090", CPU: "1", Memory: "1Gi",
		PreStop: 5 * time.Second, DrainDelay: time.Second, GracePeriod: 30 * time.Second,
	}
}

// Validate names the option at fault.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if msgs := validation.IsDNS1123Label(o.Model); len(msgs) > 0 {
		bad("model %q: not a Kubernetes name: %v", o.Model, msgs)
	}
	if o.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
			bad("namespace %q: %v", o.Namespace, msgs)
		}
	}
	if o.Hostname != "" {
		if msgs := validation.IsDNS1123Subdomain(o.Hostname); len(msgs) > 0 {
			bad("hostname %q: %v", o.Hostname, msgs)
		}
	}
	if o.Image == "" {
		bad("image: empty; give the container image holding infer, e.g. registry.example.com/infer:1.0")
	}
	if len(o.Versions) == 0 {
		bad("versions: none to deploy")
	}
	total, seen := int32(0), map[int64]bool{}
	for _, v := range o.Versions {
		if v.Number < 1 || seen[v.Number] || v.Weight < 0 {
			bad("version %d weight %d: want distinct versions from 1, weights of at least 0", v.Number, v.Weight)
		}
		seen[v.Number] = true
		total += v.Weight
	}
	if len(o.Versions) > 0 && total == 0 {
		bad("weights: every version has weight 0, so the route sends nothing anywhere")
	}
	for _, f := range o.ModelFiles {
		if msgs := validation.IsConfigMapKey(f); len(msgs) > 0 || f == "." || f == ".." {
			bad("model file %q: want a file name at the top of the model's folder", f)
		}
	}
	if o.AdminTokenSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(o.AdminTokenSecret); len(msgs) > 0 {
			bad("admin token secret %q: not a Kubernetes name: %v", o.AdminTokenSecret, msgs)
		}
	}
	if o.Gateway == "" || o.ModelsClaim == "" {
		bad("gateway %q and models claim %q: both must be named", o.Gateway, o.ModelsClaim)
	}
	switch o.Autoscaler {
	case NoAutoscaler:
		if o.Replicas < 1 {
			bad("replicas %d: want at least 1 (scale to zero needs --autoscaler keda)", o.Replicas)
		}
	case HPA, KEDA:
		if o.Replicas < 0 || o.Replicas == 0 && o.Autoscaler != KEDA || o.MaxReplicas < max(o.Replicas, 1) {
			bad("replicas %d, max replicas %d: want a minimum of at least 1 (0 only with keda) and a maximum of at least the minimum and 1", o.Replicas, o.MaxReplicas)
		}
	default:
		bad("autoscaler %q: want none, %s or %s", o.Autoscaler, HPA, KEDA)
	}
	if o.Autoscaler == KEDA {
		if o.Prometheus == "" {
			bad("prometheus: empty; KEDA needs the address of the Prometheus that scrapes the pods")
		}
		if o.Replicas == 0 && o.DemandQuery == "" {
			bad("replicas 0: a version scaled to zero has no queue to read; give a demand query measured outside the pods (e.g. the Gateway's request rate for the route), or a minimum of 1")
		}
		if o.QueueAgeTarget <= 0 {
			bad("queue age target %v: want above 0", o.QueueAgeTarget)
		}
	}
	quantities := map[string]string{"cpu": o.CPU, "memory": o.Memory, "waiting target": o.WaitingTarget}
	if o.Autoscaler == KEDA {
		quantities["activation"] = o.Activation
	}
	for v, q := range o.VersionMemory {
		quantities["version "+strconv.FormatInt(v, 10)+" memory"] = q
	}
	for name, q := range quantities {
		if _, err := resource.ParseQuantity(q); err != nil {
			bad("%s %q: %v", name, q, err)
		}
	}
	if o.PreStop < 0 || o.DrainDelay < 0 || o.GracePeriod < o.DrainDelay {
		bad("pre-stop %v, drain delay %v, grace period %v: want none negative and a grace period of at least the drain delay", o.PreStop, o.DrainDelay, o.GracePeriod)
	}
	return errors.Join(errs...)
}

// Render returns the manifests: per version a Deployment, a Service and
// (with an autoscaler) a ScaledObject or HorizontalPodAutoscaler and (on
// spot) a PodDisruptionBudget, then the HTTPRoute and the GRPCRoute.
func Render(o Options) ([]runtime.Object, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var objs []runtime.Object
	for _, v := range o.Versions {
		name := versionName(o.Model, v.Number)
		objs = append(objs, deployment(o, v, name), service(o, v, name))
		switch o.Autoscaler {
		case HPA:
			objs = append(objs, autoscaler(o, v, name))
		case KEDA:
			objs = append(objs, scaledObject(o, v, name))
		}
		if o.Spot {
			objs = append(objs, disruptionBudget(o, v, name))
		}
	}
	return append(objs, httpRoute(o), grpcRoute(o)), nil
}

// Write renders o as one YAML stream. Fields left unset are left out
// (never written as null), and so is every object's status: a manifest
// says what is wanted, and strict validators refuse a status with its
// required fields null (an HTTPRoute's status.parents).
func Write(w io.Writer, o Options) error {
	objs, err := Render(o)
	if err != nil {
		return err
	}
	for i, obj := range objs {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("manifest %d: %w", i, err)
		}
		delete(u, "status")
		b, err := yaml.Marshal(withoutNulls(u))
		if err != nil {
			return fmt.Errorf("manifest %d: %w", i, err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// withoutNulls drops the null fields of v (metadata.creationTimestamp,
// which the typed structs always carry), recursively. Empty objects stay:
// emptyDir: {} means something.
func withoutNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = withoutNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = withoutNulls(e)
		}
	}
	return v
}

func versionName(model string, v int64) string { return model + "-v" + strconv.FormatInt(v, 10) }

func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
