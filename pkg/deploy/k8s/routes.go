package k8s

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// grpcService is the Open Inference Protocol's gRPC service.
const grpcService = "inference.GRPCInferenceService"

// httpRoute splits the model's unversioned requests (/v2/models/<model>
// and the OpenAI-compatible /v1) by weight, and sends a request that names
// its version to that version's pods (the longer path prefix wins).
func httpRoute(o Options) *gatewayv1.HTTPRoute {
	split := gatewayv1.HTTPRouteRule{Matches: append(pathPrefix("/v2/models/"+o.Model), pathPrefix("/v1")...)}
	rules := []gatewayv1.HTTPRouteRule{split}
	for _, v := range o.Versions {
		name := versionName(o.Model, v.Number)
		rules[0].BackendRefs = append(rules[0].BackendRefs, httpBackend(name, v.Weight))
		rules = append(rules, gatewayv1.HTTPRouteRule{
			Matches:     pathPrefix("/v2/models/" + o.Model + "/versions/" + strconv.FormatInt(v.Number, 10)),
			BackendRefs: []gatewayv1.HTTPBackendRef{httpBackend(name, 1)},
		})
	}
	return &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Model, Namespace: o.Namespace, Labels: modelLabels(o)},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: commonRoute(o),
			Hostnames:       hostnames(o),
			Rules:           rules,
		},
	}
}

// grpcRoute splits the protocol's gRPC calls by weight. A gRPC call names
// its model and version in the message, where no route can look, so
// every call of the service goes by the weights: give the model a
// hostname of its own when others share the Gateway.
func grpcRoute(o Options) *gatewayv1.GRPCRoute {
	service := grpcService
	exact := gatewayv1.GRPCMethodMatchExact
	rule := gatewayv1.GRPCRouteRule{Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{Type: &exact, Service: &service}}}}
	for _, v := range o.Versions {
		port := gatewayv1.PortNumber(GRPCPort)
		rule.BackendRefs = append(rule.BackendRefs, gatewayv1.GRPCBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(versionName(o.Model, v.Number)), Port: &port},
			Weight:                 new(v.Weight),
		}})
	}
	return &gatewayv1.GRPCRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "GRPCRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Model, Namespace: o.Namespace, Labels: modelLabels(o)},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: commonRoute(o),
			Hostnames:       hostnames(o),
			Rules:           []gatewayv1.GRPCRouteRule{rule},
		},
	}
}

func commonRoute(o Options) gatewayv1.CommonRouteSpec {
	return gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: gatewayv1.ObjectName(o.Gateway)}}}
}

func hostnames(o Options) []gatewayv1.Hostname {
	if o.Hostname == "" {
		return nil
	}
	return []gatewayv1.Hostname{gatewayv1.Hostname(o.Hostname)}
}

func httpBackend(service string, weight int32) gatewayv1.HTTPBackendRef {
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
