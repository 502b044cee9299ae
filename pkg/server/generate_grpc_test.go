package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/inferencepb"
	"github.com/infer-serving/infer/pkg/internal/requests"
	"github.com/infer-serving/infer/pkg/tensor"
)

// gRPC's ModelInfer reaches a text generator as Triton's LLM backends
// expose one: BYTES text_input in, BYTES text_output out, an optional
// max_tokens, greedy; each prompt's text is what Triton's generate
// endpoint gives greedily. The metadata shows those tensors, not the
// decoder's.
func TestGRPCModelInferReachesTheGenerator(t *testing.T) {
	s, url := startGenerators(t)
	c, _ := serveGRPC(t, s)
	ctx := context.Background()

	meta, err := c.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "tiny-gpt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Inputs) != 1 || meta.Inputs[0].Name != generate.TextInput || meta.Inputs[0].Datatype != "BYTES" ||
		len(meta.Outputs) != 1 || meta.Outputs[0].Name != generate.TextOutput || meta.Outputs[0].Datatype != "BYTES" {
		t.Fatalf("metadata %v, want BYTES text_input and text_output", meta)
	}

	prompts := []string{"hello world", "the cat sat on"}
	var want []string
	for _, p := range prompts {
		r := postJSON(t, url+"/v2/models/tiny-gpt/generate", map[string]any{"text_input": p, "parameters": map[string]any{"max_tokens": 6, "temperature": 0}})
		var gen struct {
			TextOutput string `json:"text_output"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &gen) != nil || gen.TextOutput == "" {
			t.Fatalf("generate %q: %d %s", p, r.status, r.body)
		}
		want = append(want, gen.TextOutput)
	}
	var text []byte
	for _, p := range prompts {
		text = tensor.AppendUint(text, uint64(len(p)), 4)
		text = append(text, p...)
	}
	inputs := []tensor.Tensor{{Name: generate.TextInput, DataType: tensor.Bytes, Shape: []int64{2}, Data: text},
		tensor.New(generate.MaxTokens, []int64{1}, []int64{6})}
	for _, raw := range []bool{true, false} {
		resp, err := c.ModelInfer(ctx, requests.GRPC("tiny-gpt", inputs, raw))
		if err != nil {
			t.Fatalf("raw=%v: %v", raw, err)
		}
		if len(resp.Outputs) != 1 || resp.Outputs[0].Name != generate.TextOutput || !slices.Equal(resp.Outputs[0].Shape, []int64{2}) || len(resp.RawOutputContents) != 1 {
			t.Fatalf("raw=%v: response %v", raw, resp)
		}
		var got []string
		for d := resp.RawOutputContents[0]; len(d) >= 4; {
			n := binary.LittleEndian.Uint32(d)
			got = append(got, string(d[4:4+n]))
			d = d[4+n:]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("raw=%v: text_output %q, want %q (the generate endpoint's)", raw, got, want)
		}
	}

	wrong := []tensor.Tensor{tensor.New("input_ids", []int64{1}, []int64{7})}
	if _, err := c.ModelInfer(ctx, requests.GRPC("tiny-gpt", wrong, true)); code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"input_ids"`) {
		t.Fatalf("an input the generator does not take: %v, want InvalidArgument naming it", err)
	}
}
