package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/tensor"
)

// Protocols an Open Inference Protocol target speaks.
const (
	ProtoHTTPBinary = "http-binary"
	ProtoHTTPJSON   = "http-json"
	ProtoGRPC       = "grpc"
)

// V2Options say what to send to an Open Inference Protocol server.
type V2Options struct {
	// URL is the server: http://host:port for HTTP, host:port (or
	// grpc://host:port) for gRPC.
	URL      string
	Protocol string
	// Model names the model; empty picks the only ready one. Version
	// empty lets the server choose.
	Model, Version string
	// Models, when set, names several models instead of Model: each
	// request goes to one of them, drawn by Zipf's law with exponent Zipf
	// over their order (see Mix), and the report has each one's figures.
	Models []string
	Zipf   float64
	// Rows is each request's batch size along a dynamic first dimension
	// (1 when 0).
	Rows int64
	// Shapes gives the full shape of inputs with dynamic dimensions.
	Shapes map[string][]int64
	// Texts feed BYTES inputs, in turn (a fixed sentence when empty).
	Texts []string
	// InputData, when set, is a perf_analyzer-style file of the requests
	// to send, in turn, instead of generated ones.
	InputData string
	// Conns is the number of connections to keep; Cold opens one per
	// request (HTTP).
	Conns int
	Cold  bool
	// Seed makes the generated inputs repeatable.
	Seed uint64
	// Queue is the broker's URL for ProtoNATS and ProtoRedis; URL is then
	// the HTTP server the model's metadata is read from.
	Queue string
	// requestsOnly asks newV2HTTP for its requests, in an HTTP target.
	requestsOnly bool
}

// Model describes the model a V2 target sends to.
type Model struct {
	Name, Version string
	Inputs        []protocol.TensorMetadata
	// Protocol is the one the target speaks: http-json where http-binary
	// was asked of a server that does not advertise the binary extension.
	Protocol string
	// Stats reads the model's cumulative statistics from the server, for
	// servers that report no phases per response.
	Stats StatsReader
}

// requestPool is how many different requests a target cycles through, so
// that no cache sees only one.
const requestPool = 16

// NewV2Target reads the model's metadata from the server and returns a
// target sending it generated inputs, and what it found. close releases
// the target's connections.
func NewV2Target(ctx context.Context, o V2Options) (t Target, m Model, close func(), err error) {
	if o.Rows <= 0 {
		o.Rows = 1
	}
	if o.Conns <= 0 {
		o.Conns = 64
	}
	switch o.Protocol {
	case ProtoHTTPBinary, ProtoHTTPJSON:
		return newV2HTTP(ctx, o)
	case ProtoGRPC:
		return newV2GRPC(ctx, o)
	case ProtoNATS, ProtoRedis:
		return newV2Queue(ctx, o)
	}
	return nil, Model{}, nil, fmt.Errorf("protocol %q: want %s, %s, %s, %s or %s", o.Protocol, ProtoHTTPBinary, ProtoHTTPJSON, ProtoGRPC, ProtoNATS, ProtoRedis)
}

func newV2HTTP(ctx context.Context, o V2Options) (Target, Model, func(), error) {
	base, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, Model{}, nil, fmt.Errorf("server URL %q: want http://host:port", o.URL)
	}
	client := NewHTTPClient(o.Conns, o.Cold)
	get := func(method, path string, v any) error {
		req, err := http.NewRequestWithContext(ctx, method, base.String()+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return &unreachableError{server: base.String(), err: err}
		}
		defer resp.Body.Close()
		const limit = 1 << 20 // metadata and an index are kilobytes
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
		}
		if len(body) > limit {
			return fmt.Errorf("%s %s: the answer is over %d KiB, more than metadata takes: is %s an inference server?", method, path, limit>>10, base)
		}
		if resp.StatusCode != http.StatusOK {
			var e protocol.Error
			if json.Unmarshal(body, &e) == nil && e.Error != "" {
				return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error)
			}
			return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
		}
		if err := json.Unmarshal(body, v); err != nil {
			if hint := protocol.WrongPort(err); hint != "" {
				return fmt.Errorf("%s %s: the answer is not the protocol's JSON: %w (%s)", method, path, err, hint)
			}
			return fmt.Errorf("%s %s: the answer is not the protocol's JSON: %w", method, path, err)
		}
		return nil
	}
	names := o.Models
	if len(names) > 0 {
		if names, err = expandModels(names, func() ([]string, error) {
			var idx []struct{ Name string }
			err := get("POST", "/v2/repository/index", &idx)
			var out []string
			for _, e := range idx {
				out = append(out, e.Name)
			}
			return out, err
		}); err != nil {
			return nil, Model{}, nil, err
		}
	} else {
		name := o.Model
		if name == "" {
			var idx []struct{ Name, State string }
			if err := get("POST", "/v2/repository/index", &idx); err != nil {
				if _, down := errors.AsType[*unreachableError](err); down || protocol.WrongPort(err) != "" {
					return nil, Model{}, nil, err
				}
				return nil, Model{}, nil, fmt.Errorf("no --model given, and %s has no repository index to choose from (%w): name the model with --model NAME (GET %s/v2/models/NAME is its metadata)", base, err, base)
			}
			if name, err = onlyReady(idx); err != nil {
				return nil, Model{}, nil, err
			}
		}
		names = []string{name}
	}
	// The binary tensor extension only where the server advertises it
	// (Triton and infer do; a plain v2 server such as MLServer does not):
	// otherwise JSON tensors, which every v2 server reads.
	protocolUsed := o.Protocol
	if o.Protocol == ProtoHTTPBinary {
		var server protocol.ServerMetadata
		if err := get("GET", "/v2", &server); err != nil || !slices.Contains(server.Extensions, protocol.ExtensionBinaryTensorData) {
			protocolUsed = ProtoHTTPJSON
		}
	}
	var model Model
	binaryBody := protocolUsed == ProtoHTTPBinary
	target := &HTTP{Client: client}
	for _, name := range names {
		path := "/v2/models/" + url.PathEscape(name)
		if o.Version != "" {
			path += "/versions/" + url.PathEscape(o.Version)
		}
		var meta protocol.ModelMetadata
		if err := get("GET", path, &meta); err != nil {
			return nil, Model{}, nil, fmt.Errorf("model %q: %w", name, err)
		}
		model = Model{Name: meta.Name, Version: o.Version, Inputs: meta.Inputs, Protocol: protocolUsed, Stats: httpStats(client, base.String(), meta.Name, o.Version)}
		pool, err := generate(meta.Inputs, o)
		if err != nil {
			return nil, model, nil, fmt.Errorf("model %q: %w", name, err)
		}
		for _, inputs := range pool {
			body, hl, err := (&protocol.InferRequest{Inputs: inputs, BinaryOutput: binaryBody}).Encode(binaryBody)
			if err != nil {
				return nil, model, nil, err
			}
			h := http.Header{"Content-Type": {"application/json"}}
			if hl >= 0 {
				h.Set("Content-Type", "application/octet-stream")
				h.Set(protocol.HeaderContentLength, strconv.FormatInt(hl, 10))
			}
			target.Requests = append(target.Requests, HTTPRequest{Method: "POST", URL: base.String() + path + "/infer", Header: h, Body: body})
		}
	}
	var to sender = target
	closeAll := client.CloseIdleConnections
	if base.Scheme == "http" && !o.requestsOnly { // the lean client; net/http for TLS
		fast, err := NewHTTP1(target.Requests, o.Conns, o.Cold)
		if err != nil {
			return nil, model, nil, err
		}
		to, closeAll = fast, func() { fast.Close(); client.CloseIdleConnections() }
	}
	return mixOf(to, names, model, o, closeAll)
}

// mixOf returns to as the target of model alone, or, for several names,
// a Mix over them (see V2Options.Models) whose Model names the mix.
func mixOf(to sender, names []string, model Model, o V2Options, close func()) (Target, Model, func(), error) {
	if len(names) == 1 {
		return to, model, close, nil
	}
	mix, err := newMix(to, names, requestPool, o.Zipf, o.Seed)
	if err != nil {
		close()
		return nil, Model{}, nil, err
	}
	model.Name, model.Inputs, model.Stats = MixName(names), nil, nil
	return mix, model, close, nil
}

// MixName names a mix of models in reports: "m000..m049 (50 models)".
func MixName(names []string) string {
	return fmt.Sprintf("%s..%s (%d models)", names[0], names[len(names)-1], len(names))
}

func newV2GRPC(ctx context.Context, o V2Options) (Target, Model, func(), error) {
	addr := strings.TrimPrefix(o.URL, "grpc://")
	if addr == "" || strings.Contains(addr, "/") {
		return nil, Model{}, nil, fmt.Errorf("server address %q: want host:port for gRPC", o.URL)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.MaxCallSendMsgSize(1<<30)))
	if err != nil {
		return nil, Model{}, nil, fmt.Errorf("server address %q: %w", o.URL, err)
	}
	c := inferencepb.NewGRPCInferenceServiceClient(conn)
	fail := func(err error) (Target, Model, func(), error) { conn.Close(); return nil, Model{}, nil, err }
	names := o.Models
	if len(names) > 0 {
		if names, err = expandModels(names, func() ([]string, error) {
			idx, err := c.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{})
			var out []string
			for _, m := range idx.GetModels() {
				out = append(out, m.GetName())
			}
			return out, err
		}); err != nil {
			return fail(err)
		}
	} else {
		name := o.Model
		if name == "" {
			idx, err := c.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{Ready: true})
			if err != nil {
				if hint := protocol.WrongPort(err); hint != "" {
					return fail(fmt.Errorf("cannot speak gRPC to %s: %w (%s)", addr, err, hint))
				}
				return fail(fmt.Errorf("no --model given and the repository index of %s is unavailable: %w", addr, err))
			}
			var entries []struct{ Name, State string }
			for _, m := range idx.GetModels() {
				entries = append(entries, struct{ Name, State string }{m.GetName(), m.GetState()})
			}
			if name, err = onlyReady(entries); err != nil {
				return fail(err)
			}
		}
		names = []string{name}
	}
	var model Model
	target := &GRPC{Client: c}
	for _, name := range names {
		meta, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: name, Version: o.Version})
		if err != nil {
			return fail(fmt.Errorf("model %q at %s: %w", name, addr, err))
		}
		model = Model{Name: meta.GetName(), Version: o.Version, Protocol: ProtoGRPC, Stats: grpcStats(c, meta.GetName(), o.Version)}
		for _, in := range meta.GetInputs() {
			model.Inputs = append(model.Inputs, protocol.TensorMetadata{Name: in.GetName(), Datatype: in.GetDatatype(), Shape: in.GetShape()})
		}
		pool, err := generate(model.Inputs, o)
		if err != nil {
			return fail(fmt.Errorf("model %q: %w", name, err))
		}
		for _, inputs := range pool {
			req := &inferencepb.ModelInferRequest{ModelName: model.Name, ModelVersion: o.Version}
			for _, t := range inputs {
				req.Inputs = append(req.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: t.Name, Datatype: t.DataType.String(), Shape: t.Shape})
				req.RawInputContents = append(req.RawInputContents, t.Data)
			}
			target.Requests = append(target.Requests, req)
		}
	}
	return mixOf(target, names, model, o, func() { conn.Close() })
}

// onlyReady returns the one ready model of an index, or an error naming
// the choices.
func onlyReady(idx []struct{ Name, State string }) (string, error) {
	seen := map[string]bool{}
	var ready []string
	for _, m := range idx {
		if (m.State == "" || m.State == "READY") && !seen[m.Name] {
			seen[m.Name] = true
			ready = append(ready, m.Name)
		}
	}
	switch len(ready) {
	case 0:
		return "", errors.New("the server has no ready model")
	case 1:
		return ready[0], nil
	}
	return "", fmt.Errorf("the server has %d ready models (%s): choose one with --model", len(ready), strings.Join(ready, ", "))
}

// generate returns requestPool sets of inputs for a model's inputs: random
// values of each input's datatype, the first dynamic dimension o.Rows, the
// others from o.Shapes.
func generate(inputs []protocol.TensorMetadata, o V2Options) ([][]tensor.Tensor, error) {
	if o.InputData != "" {
		return ReadInputData(o.InputData, inputs, o.Rows)
	}
	for name := range o.Shapes {
		found := false
		for _, in := range inputs {
			found = found || in.Name == name
		}
		if !found {
			return nil, fmt.Errorf("--shape %s: the model has no input %q", name, name)
		}
	}
	if o.Rows > 1 && len(o.Shapes) == 0 && !slices.ContainsFunc(inputs, func(in protocol.TensorMetadata) bool { return len(in.Shape) > 0 && in.Shape[0] < 0 }) {
		return nil, fmt.Errorf("--batch-size %d: no input of the model has a dynamic first dimension to batch along (it takes no batch; its inputs' shapes are fixed)", o.Rows)
	}
	shapes := make([][]int64, len(inputs))
	types := make([]tensor.DataType, len(inputs))
	for i, in := range inputs {
		dt, ok := tensor.ParseDataType(in.Datatype)
		if !ok {
			return nil, fmt.Errorf("input %q: unknown datatype %q", in.Name, in.Datatype)
		}
		types[i] = dt
		if s, ok := o.Shapes[in.Name]; ok {
			if len(s) != len(in.Shape) {
				return nil, fmt.Errorf("--shape %s:%s: %d dimensions, the model's input has %d (%v)", in.Name, joinInts(s), len(s), len(in.Shape), in.Shape)
			}
			for j, d := range s {
				if d < 1 || in.Shape[j] >= 0 && d != in.Shape[j] {
					return nil, fmt.Errorf("--shape %s:%s: dimension %d is %d, the model's input is %v", in.Name, joinInts(s), j, d, in.Shape)
				}
			}
			shapes[i] = s
			continue
		}
		s := make([]int64, len(in.Shape))
		for j, d := range in.Shape {
			switch {
			case d >= 0:
				s[j] = d
			case j == 0:
				s[j] = o.Rows
			default:
				return nil, fmt.Errorf("input %q has shape %v: give its dynamic dimensions with --shape %s:%s", in.Name, in.Shape, in.Name, joinInts(example(in.Shape, o.Rows)))
			}
		}
		shapes[i] = s
	}
	texts := o.Texts
	if len(texts) == 0 {
		texts = []string{"The quick brown fox jumps over the lazy dog."}
	}
	r := rand.New(rand.NewPCG(o.Seed, 1))
	pool := make([][]tensor.Tensor, requestPool)
	next := 0
	for k := range pool {
		for i, in := range inputs {
			if types[i] != tensor.Bytes {
				pool[k] = append(pool[k], tensor.Random(in.Name, types[i], shapes[i], r))
				continue
			}
			pool[k] = append(pool[k], textsTensor(in.Name, shapes[i], texts, &next))
		}
	}
	return pool, nil
}

func example(shape []int64, rows int64) []int64 {
	s := make([]int64, len(shape))
	for j, d := range shape {
		switch {
		case d >= 0:
			s[j] = d
		case j == 0:
			s[j] = rows
		default:
			s[j] = 128
		}
	}
	return s
}

func joinInts(v []int64) string {
	var b bytes.Buffer
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(x, 10))
	}
	return b.String()
}

// ParseShape parses a --shape value, name:d1,d2,...
func ParseShape(s string) (string, []int64, error) {
	name, dims, ok := strings.Cut(s, ":")
	if !ok || name == "" || dims == "" {
		return "", nil, fmt.Errorf("--shape %q: want name:d1,d2,... such as input_ids:1,128", s)
	}
	var shape []int64
	for _, d := range strings.Split(dims, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
		if err != nil || n < 1 {
			return "", nil, fmt.Errorf("--shape %q: %q is not a positive dimension", s, d)
		}
		shape = append(shape, n)
	}
	return name, shape, nil
}

// unreachableError is a request to the server that got no answer at all:
// nothing listens there, or the connection failed.
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	if hint := protocol.WrongPort(e.err); hint != "" {
		return fmt.Sprintf("cannot speak to %s: %v (%s)", e.server, e.err, hint)
	}
	return fmt.Sprintf("cannot reach %s: %v (is infer serve running there? --server names another)", e.server, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }
