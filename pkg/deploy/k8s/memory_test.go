package k8s

import (
	"bytes"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestMemoryForAddsTheBaselineAndHeadroom(t *testing.T) {
	for _, tc := range []struct {
		bytes int64
		want  string
	}{
		{0, "96Mi"},
		{-1, "96Mi"},         // nothing measured below zero
		{1, "97Mi"},          // rounded up to a whole MiB
		{100 << 20, "246Mi"}, // 96 + 150
		{2 << 30, "3168Mi"},  // 96 + 3072
		{76 << 20, "210Mi"},  // mlp's host, about
	} {
		if got := MemoryFor(tc.bytes); got != tc.want {
			t.Errorf("MemoryFor(%d) = %s, want %s", tc.bytes, got, tc.want)
		}
	}
}

// A version's measured memory sizes its own Deployment, request and limit
// alike; a version without one keeps the options' memory.
func TestRenderSizesEachVersionsMemory(t *testing.T) {
	o := canary()
	o.VersionMemory = map[int64]string{2: MemoryFor(300 << 20)}
	objs, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, obj := range objs {
		if d, ok := obj.(*appsv1.Deployment); ok {
			r := d.Spec.Template.Spec.Containers[0].Resources
			req, lim := r.Requests[corev1.ResourceMemory], r.Limits[corev1.ResourceMemory]
			got[d.Name] = [2]string{req.String(), lim.String()}
		}
	}
	if got["mlp-v1"] != [2]string{"1Gi", "1Gi"} || got["mlp-v2"] != [2]string{"546Mi", "546Mi"} {
		t.Fatalf("memory request and limit per deployment: %v", got)
	}
	o.VersionMemory[2] = "much"
	if err := Write(&bytes.Buffer{}, o); err == nil || !strings.Contains(err.Error(), `version 2 memory "much"`) {
		t.Fatalf("a bad version memory: %v", err)
	}
}
