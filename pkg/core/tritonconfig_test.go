package core

import (
	"testing"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/runner"
)

// config.yaml's version_policy reads in the HTTP /config answer as Triton
// writes its own: latest, specific (versions as JSON numbers), or all when
// none is set.
func TestTritonVersionPolicy(t *testing.T) {
	latest := runner.VersionPolicy{Latest: &runner.LatestVersions{NumVersions: 2}}
	specific := runner.VersionPolicy{Specific: &runner.SpecificVersions{Versions: []int64{1, 3}}}
	for _, c := range []struct {
		p    runner.VersionPolicy
		want string
	}{
		{latest, `{"version_policy":{"latest":{"num_versions":2}}}`},
		{specific, `{"version_policy":{"specific":{"versions":[1,3]}}}`},
		{runner.VersionPolicy{}, `{"version_policy":{"all":{}}}`},
	} {
		got, err := TritonConfigJSON(&inferencepb.ModelConfig{VersionPolicy: tritonVersionPolicy(c.p)})
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s %v, want %s", c.p, got, err, c.want)
		}
	}
}
