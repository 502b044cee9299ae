package k8s

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The metrics the autoscalers read, as infer serve exports them, labelled
// by model and version.
const (
	queueMetric     = "infer_queue_requests"           // requests in the model's queue
	sequencesMetric = "infer_sequences"                // text generation, by state; "waiting" awaits admission
	queueAgeMetric  = "infer_queue_oldest_age_seconds" // the oldest queued request's wait
	// brokerLagMetric is the requests stored in a message broker for the
	// model and not yet delivered to a server (infer serve --queue),
	// labelled by model only: each pod reports the broker's one figure.
	brokerLagMetric = "infer_queue_consumer_lag"
)

// scaleDownWindow is how long, in seconds, the autoscalers look back
// before removing pods: a model's pod takes a while to load and warm, so
// a short lull must not cost one.
const scaleDownWindow = 300

func behavior() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: new(int32(0))},
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: new(int32(scaleDownWindow))},
	}
}

// autoscaler is the HorizontalPodAutoscaler alternative to KEDA: Pods
// metrics served by a custom-metrics adapter (prometheus-adapter), the
// queue and the generator's waiting sequences each held at WaitingTarget
// per pod; the HPA follows whichever asks for more pods.
func autoscaler(o Options, v Version, name string) *autoscalingv2.HorizontalPodAutoscaler {
	target := resource.MustParse(o.WaitingTarget)
	pods := func(metric string, selector map[string]string) autoscalingv2.MetricSpec {
		id := autoscalingv2.MetricIdentifier{Name: metric}
		if selector != nil {
			id.Selector = &metav1.LabelSelector{MatchLabels: selector}
		}
		return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: id, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
		}}
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    new(o.Replicas),
			MaxReplicas:    o.MaxReplicas,
			Metrics:        []autoscalingv2.MetricSpec{pods(queueMetric, nil), pods(sequencesMetric, map[string]string{"state": "waiting"})},
			Behavior:       behavior(),
		},
	}
}

// scaledObject scales a version with KEDA on three Prometheus triggers:
// the waiting work per pod (queued requests plus sequences waiting in
// the generator, which the queue alone does not count) held at
// WaitingTarget; the oldest queued request's age held under
// QueueAgeTarget, the signal that sees a slow model before its queue
// grows; and, for a model fed from a message broker (infer serve
// --queue), the requests waiting in the broker per pod, also held at
// WaitingTarget: they are outside every pod's queue, since each pod
// fetches only what it has room for. The broker's lag is the model's,
// whichever version serves it, and every pod reports the same figure,
// hence max over the pods. Without a queue front end the series is
// absent and the trigger reads 0. KEDA follows whichever trigger asks for
// more pods. With Replicas 0 the
// version scales to zero when idle, and a third trigger on DemandQuery
// gives it its first pod once demand passes Activation.
func scaledObject(o Options, v Version, name string) *ScaledObject {
	sel := promSelector(o, v.Number)
	waiting := fmt.Sprintf("(sum(%s{%s}) or vector(0)) + (sum(%s{%s,state=\"waiting\"}) or vector(0))", queueMetric, sel, sequencesMetric, sel)
	age := fmt.Sprintf("max(%s{%s}) or vector(0)", queueAgeMetric, sel)
	lag := fmt.Sprintf("max(%s{%s}) or vector(0)", brokerLagMetric, modelSelector(o))
	so := &ScaledObject{
		TypeMeta:   metav1.TypeMeta{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"},
		ObjectMeta: meta(o, name, v.Number),
		Spec: ScaledObjectSpec{
			ScaleTargetRef:  ScaleTarget{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			PollingInterval: new(int32(15)),
			CooldownPeriod:  new(int32(scaleDownWindow)),
			MinReplicaCount: new(o.Replicas),
			MaxReplicaCount: new(o.MaxReplicas),
			Advanced:        &AdvancedConfig{HorizontalPodAutoscalerConfig: &HorizontalPodAutoscalerConfig{Behavior: behavior()}},
			Triggers: []ScaleTriggers{
				{Type: "prometheus", Name: "waiting-work", MetricType: autoscalingv2.AverageValueMetricType, Metadata: map[string]string{
					"serverAddress": o.Prometheus, "query": waiting, "threshold": o.WaitingTarget, "activationThreshold": o.Activation,
				}},
				{Type: "prometheus", Name: "queue-age", MetricType: autoscalingv2.ValueMetricType, Metadata: map[string]string{
					"serverAddress": o.Prometheus, "query": age,
					"threshold": strconv.FormatFloat(o.QueueAgeTarget.Seconds(), 'f', -1, 64), "activationThreshold": "0",
				}},
				{Type: "prometheus", Name: "broker-lag", MetricType: autoscalingv2.AverageValueMetricType, Metadata: map[string]string{
					"serverAddress": o.Prometheus, "query": lag, "threshold": o.WaitingTarget, "activationThreshold": o.Activation,
				}},
			},
		},
	}
	if o.Replicas == 0 {
		so.Spec.Triggers = append(so.Spec.Triggers, ScaleTriggers{Type: "prometheus", Name: "demand", MetricType: autoscalingv2.AverageValueMetricType, Metadata: map[string]string{
			"serverAddress": o.Prometheus, "query": o.DemandQuery, "threshold": o.WaitingTarget, "activationThreshold": o.Activation,
		}})
	}
	return so
}

// promSelector matches one version's series: by model and version, and
// by namespace when one is set (the usual scrape configurations label
// each pod's series with its namespace).
func promSelector(o Options, v int64) string {
	return matchers(o, `version="`+strconv.FormatInt(v, 10)+`"`)
}

// modelSelector matches the model's series that carry no version (the
// broker's), by namespace when one is set.
func modelSelector(o Options) string { return matchers(o) }

// matchers joins the model's matcher, the namespace's when set, and more,
// in order.
func matchers(o Options, more ...string) string {
	m := append([]string{`model="` + o.Model + `"`}, more...)
	if o.Namespace != "" {
		m = append(m, `namespace="`+o.Namespace+`"`)
	}
	slices.Sort(m)
	return strings.Join(m, ",")
}
