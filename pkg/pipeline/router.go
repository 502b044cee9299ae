package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
	"github.com/infer-serving/infer/pkg/tokenizer"
)

// RouterPlatform is the platform a router reports in its metadata.
const RouterPlatform = "router"

// DefaultRoute is the route name of a router's default model.
const DefaultRoute = "default"

// RouterConfig is a router block of config.yaml: the first route whose
// conditions all hold takes the request, else Default does.
type RouterConfig struct {
	Routes []RouteConfig `yaml:"routes"`
	// Default is the model, "name" or "name:version", of requests no
	// route takes; its interface is the router's.
	Default string `yaml:"default"`
	// Vocab is the WordPiece vocabulary that tokens conditions count
	// with, a file of the router's folder.
	Vocab     string `yaml:"vocab,omitempty"`
	Lowercase *bool  `yaml:"lowercase,omitempty"`
}

// RouteConfig is one route: a name (the Inference-Route header's value),
// a model, and conditions on the request.
type RouteConfig struct {
	Name  string    `yaml:"name"`
	Model string    `yaml:"model"`
	When  Condition `yaml:"when"`
}

// Condition holds when every part given holds.
type Condition struct {
	// Batch is the first dimension of an input (the first input when
	// Input is empty).
	Batch *Range `yaml:"batch,omitempty"`
	// Tokens is the most WordPiece tokens of any text in a BYTES input,
	// [CLS] and [SEP] included.
	Tokens *Range `yaml:"tokens,omitempty"`
	// Image is the size of the images in a BYTES input of PNG or JPEG
	// files, read from their headers: the largest width and height.
	Image *ImageRange `yaml:"image,omitempty"`
	// Header is a request header (HTTP) or metadata value (gRPC).
	Header *HeaderMatch `yaml:"header,omitempty"`
}

// Range bounds a count, both ends included; 0 leaves an end open.
type Range struct {
	Input string `yaml:"input,omitempty"`
	Min   int64  `yaml:"min,omitempty"`
	Max   int64  `yaml:"max,omitempty"`
}

// ImageRange bounds images' sizes in pixels, both ends included; 0
// leaves an end open.
type ImageRange struct {
	Input     string `yaml:"input,omitempty"`
	MinWidth  int    `yaml:"min_width,omitempty"`
	MaxWidth  int    `yaml:"max_width,omitempty"`
	MinHeight int    `yaml:"min_height,omitempty"`
	MaxHeight int    `yaml:"max_height,omitempty"`
}

// HeaderMatch holds when header Name has the value Equals.
type HeaderMatch struct {
	Name   string `yaml:"name"`
	Equals string `yaml:"equals"`
}

func (r Range) holds(n int64) bool { return n >= r.Min && (r.Max == 0 || n <= r.Max) }

// Router is a loaded router version.
type Router struct {
	name   string
	meta   runner.Metadata
	routes []route
	repo   *runner.Repository
	tok    *tokenizer.WordPiece
	taken  *prometheus.CounterVec
}

type route struct {
	name string
	ref  modelRef
	when Condition
}

var _ runner.Composite = (*Router)(nil)

// LoadRouter builds the router cfg declares, checking that every route's
// model is served and takes the default model's inputs.
func LoadRouter(name string, version int64, cfg RouterConfig, e env) (*Router, error) {
	r := &Router{name: name, repo: e.repo}
	if cfg.Default == "" {
		return nil, errors.New("router: default: name the model of requests no route takes")
	}
	def, err := parseRef(cfg.Default)
	if err != nil {
		return nil, fmt.Errorf("router: default: %w", err)
	}
	dm, err := e.repo.Model(def.name, def.version)
	if err != nil {
		return nil, fmt.Errorf("router: default: %w (a router loads after its models)", err)
	}
	r.meta = dm.Metadata()
	r.meta.Platform = RouterPlatform
	names := map[string]bool{DefaultRoute: true}
	for i, rc := range cfg.Routes {
		if !stepName.MatchString(rc.Name) || names[rc.Name] {
			return nil, fmt.Errorf("router: route %d: name %q: want a unique name of letters, digits, '-' and '_' (not %q)", i+1, rc.Name, DefaultRoute)
		}
		names[rc.Name] = true
		ref, err := parseRef(rc.Model)
		if err != nil {
			return nil, fmt.Errorf("router: route %q: %w", rc.Name, err)
		}
		m, err := e.repo.Model(ref.name, ref.version)
		if err != nil {
			return nil, fmt.Errorf("router: route %q: %w (a router loads after its models)", rc.Name, err)
		}
		if err := sameInputs(m.Metadata().Inputs, r.meta.Inputs); err != nil {
			return nil, fmt.Errorf("router: route %q: model %s: %w", rc.Name, ref, err)
		}
		if err := r.checkCondition(rc.When); err != nil {
			return nil, fmt.Errorf("router: route %q: when: %w", rc.Name, err)
		}
		r.routes = append(r.routes, route{rc.Name, ref, rc.When})
	}
	r.routes = append(r.routes, route{name: DefaultRoute, ref: def})
	for _, rt := range r.routes {
		if rt.when.Tokens != nil && r.tok == nil {
			if cfg.Vocab == "" {
				return nil, fmt.Errorf("router: route %q counts tokens: set vocab", rt.name)
			}
			vocab, err := e.readFile(cfg.Vocab)
			if err != nil {
				return nil, fmt.Errorf("router: vocab: %w", err)
			}
			if r.tok, err = tokenizer.NewWordPiece(vocab, cfg.Lowercase == nil || *cfg.Lowercase); err != nil {
				return nil, fmt.Errorf("router: vocab %s: %w", cfg.Vocab, err)
			}
		}
	}
	r.taken = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "infer_router_requests_total",
		Help:        "Requests a router sent on, by the route taken.",
		ConstLabels: prometheus.Labels{"model": name, "version": strconv.FormatInt(version, 10)},
	}, []string{"route"})
	for _, rt := range r.routes {
		r.taken.WithLabelValues(rt.name)
	}
	return r, nil
}

// sameInputs checks that got takes the inputs of want: names, datatypes
// and ranks.
func sameInputs(got, want []runner.TensorSpec) error {
	if len(got) != len(want) {
		return fmt.Errorf("takes %d inputs, the default model %d", len(got), len(want))
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(s runner.TensorSpec) bool { return s.Name == w.Name })
		if i < 0 || got[i].DataType != w.DataType || len(got[i].Shape) != len(w.Shape) {
			return fmt.Errorf("does not take input %q as the default model does (%s %v)", w.Name, w.DataType, w.Shape)
		}
	}
	return nil
}

// checkCondition checks the inputs a condition reads.
func (r *Router) checkCondition(c Condition) error {
	in := func(name string, bytesOnly bool) error {
		if name == "" && !bytesOnly {
			return nil
		}
		i := slices.IndexFunc(r.meta.Inputs, func(s runner.TensorSpec) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("input %q: the models have no such input", name)
		}
		if bytesOnly && r.meta.Inputs[i].DataType != tensor.Bytes {
			return fmt.Errorf("input %q is %s, want BYTES", name, r.meta.Inputs[i].DataType)
		}
		return nil
	}
	switch {
	case c.Batch == nil && c.Tokens == nil && c.Image == nil && c.Header == nil:
		return errors.New("give at least one of batch, tokens, image and header")
	case c.Batch != nil:
		if err := in(c.Batch.Input, false); err != nil {
			return err
		}
	}
	if c.Tokens != nil {
		if err := in(c.Tokens.Input, true); err != nil {
			return err
		}
	}
	if c.Image != nil {
		if err := in(c.Image.Input, true); err != nil {
			return err
		}
	}
	if c.Header != nil && c.Header.Name == "" {
		return errors.New("header: name the header")
	}
	return nil
}

// Metadata returns the default model's interface.
func (r *Router) Metadata() runner.Metadata { return r.meta }

// Close releases nothing: the routes' models are the repository's.
func (r *Router) Close() {}

// Describe sends nothing: the core collects composites unchecked.
func (r *Router) Describe(chan<- *prometheus.Desc) {}

// Collect sends the count of requests by route.
func (r *Router) Collect(ch chan<- prometheus.Metric) { r.taken.Collect(ch) }

// Infer sends req to the first route whose conditions hold (else the
// default) and answers with that model's answer, the route named in
// Response.Route. A condition that cannot read its input (an image that
// is no PNG or JPEG) is a runner.ErrInvalidInput naming the route.
func (r *Router) Infer(ctx context.Context, req *runner.Request) (*runner.Response, error) {
	for _, rt := range r.routes {
		ok, err := r.holds(rt.when, req)
		if err != nil {
			return nil, fmt.Errorf("%w: router %q: route %q: %v", runner.ErrInvalidInput, r.name, rt.name, err)
		}
		if !ok {
			continue
		}
		r.taken.WithLabelValues(rt.name).Inc()
		resp, err := rt.ref.call(ctx, r.repo, req)
		if err != nil {
			return nil, fmt.Errorf("router %q: route %q (model %s): %w", r.name, rt.name, rt.ref, err)
		}
		resp.Route = rt.name
		return resp, nil
	}
	panic("unreachable: the default route always holds")
}

// holds evaluates c on req; the default route's empty condition holds.
func (r *Router) holds(c Condition, req *runner.Request) (bool, error) {
	if c.Header != nil {
		if req.Header == nil || req.Header(c.Header.Name) != c.Header.Equals {
			return false, nil
		}
	}
	if c.Batch != nil {
		t, err := inputOf(req, c.Batch.Input)
		if err != nil {
			return false, err
		}
		if len(t.Shape) == 0 || !c.Batch.holds(t.Shape[0]) {
			return false, nil
		}
	}
	if c.Tokens != nil {
		t, err := inputOf(req, c.Tokens.Input)
		if err != nil {
			return false, err
		}
		if t.DataType != tensor.Bytes || t.Validate() != nil {
			return false, fmt.Errorf("input %q: want valid BYTES strings", t.Name)
		}
		var most int64
		for _, s := range stringsOf(t) {
			most = max(most, int64(len(r.tok.EncodeText(nil, string(s)))+2))
		}
		if !c.Tokens.holds(most) {
			return false, nil
		}
	}
	if c.Image != nil {
		t, err := inputOf(req, c.Image.Input)
		if err != nil {
			return false, err
		}
		if t.DataType != tensor.Bytes || t.Validate() != nil {
			return false, fmt.Errorf("input %q: want BYTES of PNG or JPEG files", t.Name)
		}
		var w, h int
		for i, f := range stringsOf(t) {
			cfg, _, err := image.DecodeConfig(bytes.NewReader(unbase64(f)))
			if err != nil {
				return false, fmt.Errorf("input %q: image %d: not a PNG or JPEG file: %v", t.Name, i, err)
			}
			w, h = max(w, cfg.Width), max(h, cfg.Height)
		}
		ir := c.Image
		if !(Range{Min: int64(ir.MinWidth), Max: int64(ir.MaxWidth)}).holds(int64(w)) ||
			!(Range{Min: int64(ir.MinHeight), Max: int64(ir.MaxHeight)}).holds(int64(h)) {
			return false, nil
		}
	}
	return true, nil
}

// inputOf returns req's input called name (the first when name is "").
func inputOf(req *runner.Request, name string) (tensor.Tensor, error) {
	for _, t := range req.Inputs {
		if name == "" || t.Name == name {
			return t, nil
		}
	}
	if name == "" {
		return tensor.Tensor{}, errors.New("the request has no inputs")
	}
	return tensor.Tensor{}, fmt.Errorf("input %q is missing", name)
}
