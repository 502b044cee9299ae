package runner

import (
	"fmt"
	"maps"
	"slices"
)

// VersionPolicy chooses which of a model's version folders are loaded, as
// the version_policy of Triton's model configuration does: at most one of
// Latest (the NumVersions highest-numbered), Specific (the versions it
// names) and All. Unset, every version is loaded (Triton loads the latest
// one): traffic policies and rollouts move traffic between loaded
// versions.
type VersionPolicy struct {
	Latest   *LatestVersions   `yaml:"latest,omitempty"`
	Specific *SpecificVersions `yaml:"specific,omitempty"`
	All      *struct{}         `yaml:"all,omitempty"`
}

// LatestVersions loads the NumVersions highest-numbered versions.
type LatestVersions struct {
	NumVersions int `yaml:"num_versions"`
}

// SpecificVersions loads the versions named.
type SpecificVersions struct {
	Versions []int64 `yaml:"versions"`
}

// maxLatestVersions bounds latest.num_versions: each version loaded is a
// model host of its own.
const maxLatestVersions = 1024

// check names what is wrong with p.
func (p VersionPolicy) check() error {
	set := 0
	for _, on := range []bool{p.Latest != nil, p.Specific != nil, p.All != nil} {
		if on {
			set++
		}
	}
	switch {
	case set > 1:
		return fmt.Errorf("version_policy: set one of latest, specific and all, not %d", set)
	case p.Latest != nil && (p.Latest.NumVersions < 1 || p.Latest.NumVersions > maxLatestVersions):
		return fmt.Errorf("version_policy.latest.num_versions: %d, want 1 to %d", p.Latest.NumVersions, maxLatestVersions)
	case p.Specific != nil && len(p.Specific.Versions) == 0:
		return fmt.Errorf("version_policy.specific.versions: none named")
	}
	if p.Specific != nil {
		for _, v := range p.Specific.Versions {
			if v < 1 {
				return fmt.Errorf("version_policy.specific.versions: %d; versions are numbered from 1", v)
			}
		}
	}
	return nil
}

// choose keeps the versions of files the policy loads.
func (p VersionPolicy) choose(files map[int64]string) map[int64]string {
	var keep []int64
	switch {
	case p.Latest != nil:
		versions := slices.Sorted(maps.Keys(files))
		keep = versions[max(len(versions)-p.Latest.NumVersions, 0):]
	case p.Specific != nil:
		keep = p.Specific.Versions
	default:
		return files
	}
	out := map[int64]string{}
	for _, v := range keep {
		if f, ok := files[v]; ok {
			out[v] = f
		}
	}
	return out
}

// String describes p as config.yaml writes it.
func (p VersionPolicy) String() string {
	switch {
	case p.Latest != nil:
		return fmt.Sprintf("latest %d", p.Latest.NumVersions)
	case p.Specific != nil:
		return fmt.Sprintf("specific %v", p.Specific.Versions)
	}
	return "all"
}
