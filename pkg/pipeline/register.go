package pipeline

import (
	"bytes"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/infer-serving/infer/pkg/runner"
)

func init() { runner.RegisterComposer(compose) }

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

// strictDecode reads node into v, refusing keys v has no field for.
func strictDecode(node *yaml.Node, v any) error {
	buf, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(buf))
	dec.KnownFields(true)
	return dec.Decode(v)
}
