// Package k8s renders the Kubernetes manifests that serve a model's
// versions behind one route: a Deployment and a Service per version, a
// Gateway API HTTPRoute splitting traffic by weight, and optionally a
// HorizontalPodAutoscaler per version on the queue-length metric. Every
// object is built from the typed API structs, never from text templates.
package k8s

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
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

// AdminTokenKey is the key of the admin token in AdminTokenSecret.
const AdminTokenKey = "token"

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
	// Gateway is the Gateway API Gateway the route attaches to.
	Gateway string
	// ModelsClaim is the PersistentVolumeClaim holding the model
	// repository (<model>/<version>/model.onnx); each version's pods mount
	// only their own version's folder.
	ModelsClaim string
	Replicas    int32
	// MaxReplicas above Replicas adds an autoscaler per version holding
	// QueueTarget queued requests per pod (infer_queue_requests, served to
	// the autoscaler by a custom-metrics adapter).
	MaxReplicas int32
	QueueTarget string
	CPU, Memory string // each container's requests
	// AdminTokenSecret, when set, names a Secret whose "token" key is the
	// admin token: the server then requires it on every admin call, and
	// serves the admin API to its holders on the public ports too.
	// Without it the admin API is on the pod's loopback only.
	AdminTokenSecret string
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
	if o.AdminTokenSecret != "" {
		if msgs := validation.IsDNS1123Subdomain(o.AdminTokenSecret); len(msgs) > 0 {
			bad("admin token secret %q: not a Kubernetes name: %v", o.AdminTokenSecret, msgs)
		}
	}
	if o.Gateway == "" || o.ModelsClaim == "" {
		bad("gateway %q and models claim %q: both must be named", o.Gateway, o.ModelsClaim)
	}
	if o.Replicas < 1 || o.MaxReplicas != 0 && o.MaxReplicas < o.Replicas {
		bad("replicas %d, max replicas %d: want at least 1, and a maximum of 0 (no autoscaler) or at least the replicas", o.Replicas, o.MaxReplicas)
	}
	for name, q := range map[string]string{"cpu": o.CPU, "memory": o.Memory, "queue target": o.QueueTarget} {
		if _, err := resource.ParseQuantity(q); err != nil {
			bad("%s %q: %v", name, q, err)
		}
	}
	return errors.Join(errs...)
}

// Render returns the manifests: per version a Deployment, a Service and
// (with MaxReplicas) an autoscaler, then the HTTPRoute.
func Render(o Options) ([]any, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var objs []any
	route := httpRoute(o)
	for _, v := range o.Versions {
		name := versionName(o.Model, v.Number)
		objs = append(objs, deployment(o, v, name), service(o, v, name))
		if o.MaxReplicas > o.Replicas {
			objs = append(objs, autoscaler(o, name))
		}
		// The split: unversioned requests by weight.
		route.Spec.Rules[0].BackendRefs = append(route.Spec.Rules[0].BackendRefs, backend(name, v.Weight))
		// A request that names its version goes to that version's pods
		// (the longer path prefix takes precedence).
		route.Spec.Rules = append(route.Spec.Rules, gatewayv1.HTTPRouteRule{
			Matches:     pathPrefix("/v2/models/" + o.Model + "/versions/" + strconv.FormatInt(v.Number, 10)),
			BackendRefs: []gatewayv1.HTTPBackendRef{backend(name, 1)},
		})
	}
	return append(objs, route), nil
}

func backend(service string, weight int32) gatewayv1.HTTPBackendRef {
	port := gatewayv1.PortNumber(HTTPPort)
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service), Port: &port},
		Weight:                 &weight,
	}}
}

func pathPrefix(p string) []gatewayv1.HTTPRouteMatch {
	prefix := gatewayv1.PathMatchPathPrefix
	return []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &prefix, Value: &p}}}
}

// Write renders o as one YAML stream.
func Write(w io.Writer, o Options) error {
	objs, err := Render(o)
	if err != nil {
		return err
	}
	for i, obj := range objs {
		b, err := yaml.Marshal(obj)
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

func versionName(model string, v int64) string { return model + "-v" + strconv.FormatInt(v, 10) }

func labels(o Options, v int64) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "infer",
		"app.kubernetes.io/instance":   o.Model,
		"app.kubernetes.io/version":    strconv.FormatInt(v, 10),
		"app.kubernetes.io/managed-by": "infer",
	}
}

func meta(o Options, name string, v int64) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels(o, v)}
}

func deployment(o Options, v Version, name string) *appsv1.Deployment {
	replicas := o.Replicas
	folder := o.Model + "/" + strconv.FormatInt(v.Number, 10)
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: period, FailureThreshold: 3,
		}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels(o, v.Number)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(o, v.Number), Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(MetricsPort),
				}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "infer",
						Image: o.Image,
						Args:  []string{"serve", "/models", "--admin-host", "127.0.0.1", "--admin-port", strconv.Itoa(AdminPort)},
						Env:   adminEnv(o),
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: HTTPPort},
							{Name: "grpc", ContainerPort: GRPCPort},
							{Name: "metrics", ContainerPort: MetricsPort},
						},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse(o.CPU),
							corev1.ResourceMemory: resource.MustParse(o.Memory),
						}},
						VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: "/models/" + folder, SubPath: folder, ReadOnly: true}},
						// Ready once the model is loaded and warmed; live while the process answers.
						ReadinessProbe: probe("/v2/health/ready", 5),
						LivenessProbe:  probe("/v2/health/live", 10),
					}},
					// infer serve drains on SIGTERM: ready goes false, then it
					// answers what it accepted before exiting.
					TerminationGracePeriodSeconds: new(int64(40)),
					Volumes: []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.ModelsClaim, ReadOnly: true},
					}}},
				},
			},
		},
	}
}

// adminEnv passes the admin token from its Secret, never in the manifest.
func adminEnv(o Options) []corev1.EnvVar {
	if o.AdminTokenSecret == "" {
		return nil
	}
	return []corev1.EnvVar{{Name: "INFER_ADMIN_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: o.AdminTokenSecret}, Key: AdminTokenKey,
	}}}}
}

// service exposes the protocol and the metrics; never the admin API.
func service(o Options, v Version, name string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: corev1.ServiceSpec{
			Selector: labels(o, v.Number),
			Ports: []corev1.ServicePort{
				{Name: "http", Port: HTTPPort, TargetPort: intstr.FromString("http")},
				{Name: "grpc", Port: GRPCPort, TargetPort: intstr.FromString("grpc"), AppProtocol: new("kubernetes.io/h2c")},
				{Name: "metrics", Port: MetricsPort, TargetPort: intstr.FromString("metrics")},
			},
		},
	}
}

func autoscaler(o Options, name string) *autoscalingv2.HorizontalPodAutoscaler {
	target := resource.MustParse(o.QueueTarget)
	minReplicas := o.Replicas
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "infer", "app.kubernetes.io/instance": o.Model}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    &minReplicas,
			MaxReplicas:    o.MaxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "infer_queue_requests"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
				},
			}},
		},
	}
}

// httpRoute is the model's route, its backends filled in by Render.
func httpRoute(o Options) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Model, Namespace: o.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "infer", "app.kubernetes.io/instance": o.Model}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayv1.ObjectName(o.Gateway)}}},
			Rules:           []gatewayv1.HTTPRouteRule{{Matches: pathPrefix("/v2/models/" + o.Model)}},
		},
	}
}
