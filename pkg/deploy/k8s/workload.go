package k8s

import (
	"path"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// nonRoot is the user and group the container runs as: distroless's
// "nonroot", so the restricted Pod Security Standard holds.
const nonRoot = 65532

// startupBudget is how long a pod may take to load and warm up its model
// before the kubelet restarts it: infer serve's --model-load-timeout (2m)
// and then some. The port opens only once every model is loaded, so the
// liveness probe waits for the startup probe rather than killing a slow
// load.
const startupBudget = 5 * time.Minute

const probePeriod = 5 // seconds

func labels(o Options, v int64) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "infer",
		"app.kubernetes.io/instance":   o.Model,
		"app.kubernetes.io/version":    strconv.FormatInt(v, 10),
		"app.kubernetes.io/managed-by": "infer",
	}
}

func modelLabels(o Options) map[string]string {
	return map[string]string{"app.kubernetes.io/name": "infer", "app.kubernetes.io/instance": o.Model, "app.kubernetes.io/managed-by": "infer"}
}

func meta(o Options, name string, v int64) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels(o, v)}
}

// ContainerArgs is what a version's container runs: infer serve on
// ModelsRoot, the admin API on loopback, and the drain settings the
// termination grace period is sized for.
func ContainerArgs(o Options) []string {
	return []string{"serve", ModelsRoot,
		"--admin-host", "127.0.0.1", "--admin-port", strconv.Itoa(AdminPort),
		"--drain-delay", o.DrainDelay.String(), "--grace-period", o.GracePeriod.String()}
}

// Mounts returns a version's mounts of the models claim: each of the
// model's own files, and the version's folder, at the paths the
// repository has them (<model>/config.yaml, <model>/<version>/), under
// ModelsRoot. Other versions' folders stay out of the pod, which serves
// its version alone.
func Mounts(o Options, v int64) []corev1.VolumeMount {
	var mounts []corev1.VolumeMount
	for _, f := range o.ModelFiles {
		sub := path.Join(o.Model, f)
		mounts = append(mounts, corev1.VolumeMount{Name: "models", MountPath: path.Join(ModelsRoot, sub), SubPath: sub, ReadOnly: true})
	}
	sub := path.Join(o.Model, strconv.FormatInt(v, 10))
	return append(mounts, corev1.VolumeMount{Name: "models", MountPath: path.Join(ModelsRoot, sub), SubPath: sub, ReadOnly: true})
}

func deployment(o Options, v Version, name string) *appsv1.Deployment {
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: probePeriod, FailureThreshold: failures,
		}
	}
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels(o, v.Number)},
			// A new pod must be ready (loaded and warm) before an old one goes.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: new(intstr.FromInt32(0)), MaxSurge: new(intstr.FromInt32(1)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(o, v.Number), Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": strconv.Itoa(MetricsPort),
				}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "infer",
						Image: o.Image,
						Args:  ContainerArgs(o),
						Env:   adminEnv(o),
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: HTTPPort},
							{Name: "grpc", ContainerPort: GRPCPort},
							{Name: "metrics", ContainerPort: MetricsPort},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(o.CPU), corev1.ResourceMemory: memory(o, v)},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: memory(o, v)},
						},
						VolumeMounts: append(Mounts(o, v.Number), corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}),
						// Ready once every model is loaded and warm; the
						// liveness probe starts once it first is.
						StartupProbe:   probe("/v2/health/ready", int32(startupBudget/time.Second/probePeriod)),
						ReadinessProbe: probe("/v2/health/ready", 2),
						LivenessProbe:  probe("/v2/health/live", 3),
						// Endpoints drop a terminating pod some time after it
						// starts terminating: keep serving until they have,
						// then SIGTERM starts infer's drain.
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: seconds(o.PreStop)}}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: new(false),
							ReadOnlyRootFilesystem:   new(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					// The pre-stop wait, then infer's drain delay and its
					// grace period for accepted requests, and a margin.
					TerminationGracePeriodSeconds: new(seconds(o.PreStop) + seconds(o.GracePeriod) + 5),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: new(true), RunAsUser: new(int64(nonRoot)), RunAsGroup: new(int64(nonRoot)), FSGroup: new(int64(nonRoot)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					AutomountServiceAccountToken: new(false),
					Volumes: []corev1.Volume{
						{Name: "models", VolumeSource: corev1.VolumeSource{
							PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.ModelsClaim, ReadOnly: true},
						}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	// An autoscaler owns the replica count; a replicas field beside it
	// would reset the count at every apply.
	if o.Autoscaler == NoAutoscaler {
		d.Spec.Replicas = new(o.Replicas)
	}
	if o.Spot {
		spot(&d.Spec.Template.Spec, labels(o, v.Number))
	}
	return d
}

// spotTaints are the taints the clouds put on spot nodes, and
// spotLabels the labels that mark them: GKE, AKS, EKS managed node
// groups and Karpenter.
var (
	spotTaints = []corev1.Toleration{
		{Key: "cloud.google.com/gke-spot", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule},
		{Key: "kubernetes.azure.com/scalesetpriority", Operator: corev1.TolerationOpEqual, Value: "spot", Effect: corev1.TaintEffectNoSchedule},
		{Key: "eks.amazonaws.com/capacityType", Operator: corev1.TolerationOpEqual, Value: "SPOT", Effect: corev1.TaintEffectNoSchedule},
		{Key: "karpenter.sh/capacity-type", Operator: corev1.TolerationOpEqual, Value: "spot", Effect: corev1.TaintEffectNoSchedule},
	}
	spotLabels = [][2]string{
		{"cloud.google.com/gke-spot", "true"},
		{"kubernetes.azure.com/scalesetpriority", "spot"},
		{"eks.amazonaws.com/capacityType", "SPOT"},
		{"karpenter.sh/capacity-type", "spot"},
	}
)

// spot lets pods onto spot nodes and prefers them, without requiring
// them (on-demand nodes take the pods when spot capacity runs out), and
// spreads a version's pods over nodes so that one reclaimed node takes
// few of them.
func spot(p *corev1.PodSpec, selector map[string]string) {
	p.Tolerations = append(p.Tolerations, spotTaints...)
	var prefs []corev1.PreferredSchedulingTerm
	for _, l := range spotLabels {
		prefs = append(prefs, corev1.PreferredSchedulingTerm{Weight: 100, Preference: corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: l[0], Operator: corev1.NodeSelectorOpIn, Values: []string{l[1]}}},
		}})
	}
	p.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: prefs}}
	p.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: selector},
	}}
}

// disruptionBudget lets a drain (a spot node's termination handler, an
// upgrade) take one pod of a version at a time.
func disruptionBudget(o Options, v Version, name string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: new(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: labels(o, v.Number)},
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
