package pipeline

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/yamlfile"
)

func init() {
	runner.RegisterComposer(compose)
	runner.RegisterCallLister(calls)
}

// calls lists the models cfg's pipeline or router calls: its model steps,
// or its routes and default.
func calls(cfg runner.Config) []string {
	var refs []string
	switch {
	case cfg.Pipeline != nil:
		var p Config
		if strictDecode(&cfg.Pipeline.Node, &p) != nil {
			return nil
		}
		for _, s := range p.Steps {
			refs = append(refs, s.Model)
		}
	case cfg.Router != nil:
		var r RouterConfig
		if strictDecode(&cfg.Router.Node, &r) != nil {
			return nil
		}
		refs = append(refs, r.Default)
		for _, rt := range r.Routes {
			refs = append(refs, rt.Model)
		}
	}
	var names []string
	for _, s := range refs {
		if ref, err := parseRef(s); s != "" && err == nil {
			names = append(names, ref.name)
		}
	}
	return names
}

// compose builds the pipeline or router that spec's config declares.
func compose(spec runner.CompositeSpec) (runner.Composite, error) {
	e := env{repo: spec.Models, readFile: spec.ReadFile}
	switch {
	case spec.Config.Pipeline != nil:
		var cfg Config
		if err := strictDecode(&spec.Config.Pipeline.Node, &cfg); err != nil {
			return nil, fmt.Errorf("config: pipeline: %w", err)
		}
		return Load(spec.Name, spec.Version, cfg, e)
	case spec.Config.Router != nil:
		var cfg RouterConfig
		if err := strictDecode(&spec.Config.Router.Node, &cfg); err != nil {
			return nil, fmt.Errorf("config: router: %w", err)
		}
		return LoadRouter(spec.Name, spec.Version, cfg, e)
	}
	return nil, errors.New("config declares neither a pipeline nor a router")
}

// strictDecode reads node into v, refusing keys v has no field for, each
// problem named by its key's path (yamlfile.DecodeNode).
func strictDecode(node *yaml.Node, v any) error {
	return yamlfile.DecodeNode(node, v)
}
