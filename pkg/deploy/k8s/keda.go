package k8s

import (
	"maps"
	"slices"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// KEDAVersion is the KEDA release whose ScaledObject CRD the types below
// mirror and the tests validate against (third_party/keda).
const KEDAVersion = "v2.21.0"

// ScaledObject is KEDA's keda.sh/v1alpha1 ScaledObject, the part of it
// infer renders, with the CRD's field names. KEDA's own Go module
// (github.com/kedacore/keda/v2) carries its controller, webhooks and
// every scaler's client library with its API types, hundreds of modules
// for a dozen fields, so these mirror them; the tests validate what they
// render against the CRD's schema.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is the ScaledObject's spec.
type ScaledObjectSpec struct {
	ScaleTargetRef ScaleTarget `json:"scaleTargetRef"`
	// PollingInterval is how often KEDA queries the triggers, in seconds.
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
	// CooldownPeriod is how long, in seconds, triggers must stay inactive
	// before a version scales to zero.
	CooldownPeriod  *int32           `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32           `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32           `json:"maxReplicaCount,omitempty"`
	Advanced        *AdvancedConfig  `json:"advanced,omitempty"`
	Triggers        []ScaleTriggers  `json:"triggers"`
	Fallback        *ScalingFallback `json:"fallback,omitempty"`
}

// ScaleTarget names the workload KEDA scales.
type ScaleTarget struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

// AdvancedConfig tunes the HorizontalPodAutoscaler KEDA creates.
type AdvancedConfig struct {
	HorizontalPodAutoscalerConfig *HorizontalPodAutoscalerConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
}

// HorizontalPodAutoscalerConfig carries the HPA's scaling behaviour.
type HorizontalPodAutoscalerConfig struct {
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// ScalingFallback is the replica count KEDA holds when a trigger fails
// FailureThreshold times in a row (Prometheus unreachable, say).
type ScalingFallback struct {
	FailureThreshold int32 `json:"failureThreshold"`
	Replicas         int32 `json:"replicas"`
}

// ScaleTriggers is one trigger: for the prometheus type, Metadata holds
// serverAddress, query, threshold and activationThreshold.
type ScaleTriggers struct {
	Type       string                         `json:"type"`
	Name       string                         `json:"name,omitempty"`
	MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
	Metadata   map[string]string              `json:"metadata"`
}

// DeepCopyObject makes ScaledObject a runtime.Object.
func (s *ScaledObject) DeepCopyObject() runtime.Object {
	c := *s
	s.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	for _, p := range []**int32{&c.Spec.PollingInterval, &c.Spec.CooldownPeriod, &c.Spec.MinReplicaCount, &c.Spec.MaxReplicaCount} {
		if *p != nil {
			*p = new(**p)
		}
	}
	if a := s.Spec.Advanced; a != nil {
		c.Spec.Advanced = &AdvancedConfig{}
		if h := a.HorizontalPodAutoscalerConfig; h != nil {
			c.Spec.Advanced.HorizontalPodAutoscalerConfig = &HorizontalPodAutoscalerConfig{Behavior: h.Behavior.DeepCopy()}
		}
	}
	if s.Spec.Fallback != nil {
		c.Spec.Fallback = new(*s.Spec.Fallback)
	}
	c.Spec.Triggers = slices.Clone(s.Spec.Triggers)
	for i := range c.Spec.Triggers {
		c.Spec.Triggers[i].Metadata = maps.Clone(s.Spec.Triggers[i].Metadata)
	}
	return &c
}

var _ runtime.Object = &ScaledObject{}
