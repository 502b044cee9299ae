package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

// The schemas the manifests are held to, all read from Go modules on
// this machine, never from the network:
//   - the built-in kinds: client-go's structured-merge-diff schema, the
//     one server-side apply checks objects against (unknown fields and
//     wrong types fail);
//   - HTTPRoute and GRPCRoute: the Gateway API module's standard CRDs;
//   - ScaledObject: KEDA's CRD, kept in third_party/keda from KEDA's module.
// A CRD's openAPIV3Schema is checked with kube-openapi's validator (types,
// required fields, nullability, enums, patterns, bounds), plus the
// pruning the API server does strictly: a field the schema does not
// declare fails. CEL rules (x-kubernetes-validations) are not evaluated.

var builtins = sync.OnceValues(func() (managedfields.TypeConverter, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return applyconfigurations.NewTypeConverter(scheme), nil
})

// crdSchemas maps "group/version, Kind" to the CRD's schema.
var crdSchemas = sync.OnceValues(func() (map[string]*spec.Schema, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return nil, fmt.Errorf("locate the Gateway API module: %w", err)
	}
	gw := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	schemas := map[string]*spec.Schema{}
	for _, file := range []string{
		filepath.Join(gw, "gateway.networking.k8s.io_httproutes.yaml"),
		filepath.Join(gw, "gateway.networking.k8s.io_grpcroutes.yaml"),
		filepath.Join("..", "..", "..", "third_party", "keda", "keda.sh_scaledobjects.yaml"),
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var crd struct {
			Spec struct {
				Group    string
				Names    struct{ Kind string }
				Versions []struct {
					Name   string
					Schema struct {
						OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
					}
				}
			}
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, v := range crd.Spec.Versions {
			var s spec.Schema
			if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, &s); err != nil {
				return nil, fmt.Errorf("%s %s: %w", file, v.Name, err)
			}
			schemas[crd.Spec.Group+"/"+v.Name+", "+crd.Spec.Names.Kind] = &s
		}
	}
	return schemas, nil
})

// validateStrictly checks one YAML document against its kind's schema.
func validateStrictly(doc []byte) error {
	var obj map[string]any
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	key := u.GetAPIVersion() + ", " + u.GetKind()
	schemas, err := crdSchemas()
	if err != nil {
		return err
	}
	if s, ok := schemas[key]; ok {
		res := validate.NewSchemaValidator(s, nil, "", strfmt.Default).Validate(obj)
		errs := res.Errors
		for _, f := range undeclared(s, obj, "") {
			errs = append(errs, fmt.Errorf("%s: field not declared in the schema", f))
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s %s: %v", key, u.GetName(), errs)
		}
		return nil
	}
	tc, err := builtins()
	if err != nil {
		return err
	}
	if _, err := tc.ObjectToTyped(u); err != nil {
		return fmt.Errorf("%s %s: %w", key, u.GetName(), err)
	}
	return nil
}

// undeclared lists the fields of v that schema s does not declare, as
// an API server with strict field validation reports them.
func undeclared(s *spec.Schema, v any, path string) []string {
	if s == nil || s.Extensions != nil && s.Extensions["x-kubernetes-preserve-unknown-fields"] == true {
		return nil
	}
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if len(s.Properties) == 0 {
			if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
				for k, e := range x {
					out = append(out, undeclared(s.AdditionalProperties.Schema, e, path+"."+k)...)
				}
			}
			return out
		}
		for k, e := range x {
			p, ok := s.Properties[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, undeclared(&p, e, path+"."+k)...)
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for i, e := range x {
				out = append(out, undeclared(s.Items.Schema, e, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	sort.Strings(out)
	return out
}

// combinations is every combination of the options that change what is
// rendered.
func combinations() map[string]Options {
	out := map[string]Options{}
	for _, scaler := range []string{NoAutoscaler, HPA, KEDA} {
		for _, spot := range []bool{false, true} {
			for _, ns := range []string{"", "serving"} {
				for _, extras := range []bool{false, true} { // hostname, admin secret, model files
					for _, versions := range [][]Version{{{1, 100}}, {{1, 95}, {2, 5}}} {
						for _, min := range []int32{0, 1, 2} {
							o := Defaults("text-encoder", "registry.example.com/infer:1.0")
							o.Versions, o.Autoscaler, o.Spot, o.Namespace, o.Replicas = versions, scaler, spot, ns, min
							if scaler != NoAutoscaler {
								o.MaxReplicas = 8
							}
							if min == 0 {
								if scaler != KEDA {
									continue
								}
								o.DemandQuery = `sum(rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~".*text-encoder.*"}[1m]))`
							}
							if extras {
								o.Hostname, o.AdminTokenSecret, o.ModelFiles = "text.example.com", "infer-admin", []string{"config.yaml", "vocab.txt"}
							}
							out[fmt.Sprintf("autoscaler=%q spot=%v namespace=%q extras=%v versions=%d min=%d", scaler, spot, ns, extras, len(versions), min)] = o
						}
					}
				}
			}
		}
	}
	return out
}

func TestEveryCombinationValidatesStrictly(t *testing.T) {
	kinds := map[string]int{}
	for name, o := range combinations() {
		var b bytes.Buffer
		if err := Write(&b, o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, doc := range strings.Split(b.String(), "---\n") {
			if err := validateStrictly([]byte(doc)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			var tm struct{ Kind string }
			_ = yaml.Unmarshal([]byte(doc), &tm)
			kinds[tm.Kind]++
		}
	}
	for _, k := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget", "HTTPRoute", "GRPCRoute"} {
		if kinds[k] == 0 {
			t.Errorf("no %s was validated: %v", k, kinds)
		}
	}
}

// The validators are not toothless: what the old renderer wrote, and
// made-up or misplaced fields, fail.
func TestStrictValidationRefusesBadManifests(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: m}\nspec: {parentRefs: [{name: gw}]}\nstatus: {parents: null}\n", "parents"},
		{"apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: m}\nspec: {parentRefs: [{name: gw}], rulez: []}\n", ".spec.rulez"},
		{"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: m}\nspec: {scaleTargetRef: {name: d}}\n", "triggers"},
		{"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: m}\nspec: {scaleTargetRef: {name: d}, triggers: [{type: prometheus, metadata: {threshold: 4}}]}\n", "threshold"},
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: m}\nspec: {replica: 2}\n", "replica"},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec: {ports: [{port: http}]}\n", "port"},
	} {
		if err := validateStrictly([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %q", tc.doc, err, tc.want)
		}
	}
}
