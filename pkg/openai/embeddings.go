package openai

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
	"github.com/infer-serving/infer/pkg/tensor"
)

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

// texts reads the input: a string or a list of strings. Token ids are
// refused: an embedder here takes text, through its own tokenizer.
func (e embeddingsRequest) texts() ([]string, error) {
	if n := protocol.JSONLen(e.Input); n > maxEmbeddingInputs { // before any is decoded
		return nil, bad("input: %d inputs, want at most %d", n, maxEmbeddingInputs)
	}
	var ids []json.Number
	if json.Unmarshal(e.Input, &ids) == nil && len(ids) > 0 {
		return nil, bad("input: token ids are not supported; send text")
	}
	texts, err := stringOrList(e.Input, "input")
	if err != nil {
		var lists [][]int64
		if json.Unmarshal(e.Input, &lists) == nil {
			return nil, bad("input: token ids are not supported; send text")
		}
		return nil, err
	}
	if len(texts) == 0 {
		return nil, bad("input: want a string or a list of strings")
	}
	return texts, nil
}

// serveEmbeddings answers /v1/embeddings with a text model's first output,
// one row a string, as float lists or (encoding_format: base64, the
// SDKs' default) base64 of little-endian float32s. The call goes through
// the serving core as an infer call does (routed by the model's traffic
// policy, admitted, batched, timed and counted), to the version routed
// before its inputs were made from that version's metadata.
func (s *API) serveEmbeddings(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req embeddingsRequest
	err := decode(w, r, s.maxBody, &req)
	var texts []string
	if err == nil {
		texts, err = req.texts()
	}
	if err == nil && req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		err = bad("encoding_format %s: want float or base64", protocol.Clip(req.EncodingFormat))
	}
	if err == nil && req.Model == "" {
		err = errNoModel
	}
	var m *runner.Model
	if err == nil {
		m, err = s.Route(r.Context(), req.Model, "", req.User, r.Header.Get)
	}
	if err == nil && !embeds(m) {
		err = bad("model %q does not embed text (it takes no single text input)", req.Model)
	}
	if err == nil && req.Dimensions != nil {
		err = bad("dimensions: model %q's embeddings cannot be shortened (it was not trained to be truncated)", req.Model)
	}
	if err != nil {
		openAIError(w, err)
		return
	}
	var data []byte
	tokens := 0
	for _, t := range texts {
		data = tensor.AppendUint(data, uint64(len(t)), 4)
		data = append(data, t...)
		n, _ := m.TextTokens(t)
		tokens += n
	}
	in := m.Metadata().Inputs[0]
	shape := []int64{int64(len(texts))}
	if len(in.Shape) == 2 {
		shape = append(shape, 1)
	}
	var body []byte
	call := &core.Call{Model: req.Model, Version: strconv.FormatInt(m.Metadata().Version, 10), Protocol: core.ProtoHTTP, Start: start, Header: r.Header.Get,
		Request: runner.Request{Inputs: []tensor.Tensor{{Name: in.Name, DataType: tensor.Bytes, Shape: shape, Data: data}}},
		Encode: func(res *core.Result) error {
			out := res.Outputs
			if len(out) == 0 || out[0].DataType != tensor.FP32 || len(out[0].Shape) != 2 {
				return fmt.Errorf("model %q's first output is not FP32 [n, dim]", req.Model)
			}
			var err error
			body, err = embeddingsBody(res.Model.Metadata().Name, out[0], req.EncodingFormat == "base64", tokens)
			return err
		}}
	res, err := s.Infer(r.Context(), call)
	if err != nil {
		openAIError(w, err)
		return
	}
	w.Header().Set("Server-Timing", string(res.Timing.AppendServerTiming(nil)))
	httpapi.WriteJSONBody(w, http.StatusOK, body)
}

// embeddingsBody is the answer for embeddings, one row of out a text.
func embeddingsBody(model string, out tensor.Tensor, base64 bool, tokens int) ([]byte, error) {
	values, err := tensor.Values[float32](out)
	if err != nil {
		return nil, err
	}
	rows, dim := int(out.Shape[0]), int(out.Shape[1])
	data := make([]map[string]any, rows)
	for i := range rows {
		var e any = values[i*dim : (i+1)*dim]
		if base64 {
			e = base64Floats(values[i*dim : (i+1)*dim])
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": e}
	}
	return json.Marshal(map[string]any{"object": "list", "model": model, "data": data,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// base64Floats encodes xs as OpenAI does: little-endian float32s, base64.
func base64Floats(xs []float32) string {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}
