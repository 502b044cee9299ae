package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/infer-serving/infer/pkg/generate"
)

// sdk is the official OpenAI Go client pointed at a test server.
func sdk(url string) openai.Client {
	return openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

// The official SDK, as a user would point it at infer serve: completions
// of a list of prompts with n, chat with content parts, logprobs,
// embeddings with the SDK's encodings, and the models API.
func TestOpenAISDK(t *testing.T) {
	s, url := startGenerators(t)
	client, ctx := sdk(url), context.Background()

	c, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "tiny-gpt", MaxTokens: openai.Int(6), N: openai.Int(2), Seed: openai.Int(7),
		Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"the cat sat on", "hello world"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 4 || c.Usage.CompletionTokens != 24 {
		t.Fatalf("two prompts, n 2: %d choices, %d completion tokens; want 4 and 24", len(c.Choices), c.Usage.CompletionTokens)
	}
	for i, ch := range c.Choices {
		if ch.Index != int64(i) || ch.Text == "" || ch.FinishReason != "length" {
			t.Errorf("choice %d: index %d, text %q, finish %q", i, ch.Index, ch.Text, ch.FinishReason)
		}
	}
	if c.Choices[0].Text == c.Choices[1].Text {
		t.Errorf("n 2 with a seed gave the same text twice: %q", c.Choices[0].Text)
	}

	// Token ids as the prompt, echoed: the same answer as their text.
	served, err := s.Repository().Model("tiny-gpt", 1)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "tiny-gpt", MaxTokens: openai.Int(5), Temperature: openai.Float(0), Echo: openai.Bool(true),
		Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: generate.Of(served).Encode("hello world")}})
	if err != nil {
		t.Fatal(err)
	}
	text, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "tiny-gpt", MaxTokens: openai.Int(5), Temperature: openai.Float(0),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("hello world")}})
	if err != nil {
		t.Fatal(err)
	}
	if ids.Choices[0].Text != "hello world"+text.Choices[0].Text {
		t.Errorf("echoed ids %q, want %q", ids.Choices[0].Text, "hello world"+text.Choices[0].Text)
	}

	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tiny-gpt", MaxCompletionTokens: openai.Int(5),
		Logprobs: openai.Bool(true), TopLogprobs: openai.Int(3), Seed: openai.Int(1),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"),
			openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("hi"), openai.TextContentPart("there")})}})
	if err != nil {
		t.Fatal(err)
	}
	lp := chat.Choices[0].Logprobs.Content
	if chat.Choices[0].Message.Content == "" || len(lp) != 5 {
		t.Fatalf("chat: %q with %d logprobs, want text and 5", chat.Choices[0].Message.Content, len(lp))
	}
	for _, tok := range lp {
		top := tok.TopLogprobs
		if len(top) != 3 || tok.Logprob > 0 || top[0].Logprob < top[1].Logprob || top[1].Logprob < top[2].Logprob || tok.Logprob > top[0].Logprob {
			t.Errorf("token %q: logprob %v, top %+v; want 3 alternatives, most likely first, none above 0", tok.Token, tok.Logprob, top)
		}
	}

	// An image part is refused by name.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tiny-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png"})})}})
	wantAPIError(t, err, http.StatusBadRequest, `messages[0].content[0].type "image_url"`)

	for _, format := range []openai.EmbeddingNewParamsEncodingFormat{"", openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
		emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-encoder", EncodingFormat: format,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two"}}})
		if err != nil {
			t.Fatalf("embeddings, encoding %q: %v", format, err)
		}
		if len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 {
			t.Fatalf("embeddings, encoding %q: %+v", format, emb.Data)
		}
	}
	_, err = client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-encoder", Dimensions: openai.Int(8),
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("one")}})
	wantAPIError(t, err, http.StatusBadRequest, "dimensions")

	m, err := client.Models.Get(ctx, "tiny-gpt")
	if err != nil || m.ID != "tiny-gpt" || m.JSON.ExtraFields["context_length"].Raw() != "512" {
		t.Fatalf("models get tiny-gpt: %+v, %v; want context_length 512", m, err)
	}
	_, err = client.Models.Get(ctx, "mlp")
	wantAPIError(t, err, http.StatusNotFound, "mlp")
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range page.Data {
		listed = append(listed, m.ID)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, []string{"text-encoder", "tiny-gpt"}) {
		t.Fatalf("models listed %v, want only the generator and the embedder", listed)
	}
}

func wantAPIError(t *testing.T, err error, status int, mention string) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != status || !strings.Contains(apiErr.Message, mention) {
		t.Fatalf("%v; want a %d naming %q", err, status, mention)
	}
}

// Streamed and whole answers are the same text, for the same seed, over
// 200 seeded random prompts with random stop sequences: stops cut from
// the whole answer (so that they are met, often mid-word), and random
// words.
func TestOpenAIStreamedEqualsWhole(t *testing.T) {
	_, url := startGenerators(t)
	client, ctx := sdk(url), context.Background()
	words := strings.Fields("the cat sat on a mat while dogs ran over hills and rivers in spring under blue skies with friends")
	rng := rand.New(rand.NewPCG(19, 2026))
	stopped := 0
	for i := range 200 {
		prompt := make([]string, 1+rng.IntN(8))
		for j := range prompt {
			prompt[j] = words[rng.IntN(len(words))]
		}
		params := openai.CompletionNewParams{Model: "tiny-gpt", MaxTokens: openai.Int(int64(4 + rng.IntN(12))), Seed: openai.Int(int64(i)),
			Temperature: openai.Float([]float64{0, 0.7, 1}[rng.IntN(3)]), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(strings.Join(prompt, " "))}}
		plain, err := client.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		var stops []string
		if full := []rune(plain.Choices[0].Text); len(full) > 2 {
			at := 1 + rng.IntN(len(full)-1)
			stops = append(stops, string(full[at:min(len(full), at+1+rng.IntN(5))]))
		}
		for range rng.IntN(3) {
			w := words[rng.IntN(len(words))]
			stops = append(stops, w[:min(len(w), 1+rng.IntN(2))])
		}
		params.Stop = openai.CompletionNewParamsStopUnion{OfStringArray: stops}
		whole, err := client.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		stream := client.Completions.NewStreaming(ctx, params)
		var streamed strings.Builder
		finish := ""
		for stream.Next() {
			for _, ch := range stream.Current().Choices {
				streamed.WriteString(ch.Text)
				if ch.FinishReason != "" {
					finish = string(ch.FinishReason)
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		w := whole.Choices[0]
		if streamed.String() != w.Text || finish != string(w.FinishReason) {
			t.Fatalf("prompt %d %q, stops %q: streamed %q (%s), whole %q (%s)", i, prompt, stops, streamed.String(), finish, w.Text, w.FinishReason)
		}
		for _, s := range stops {
			if strings.Contains(w.Text, s) {
				t.Fatalf("prompt %d: %q contains the stop sequence %q", i, w.Text, s)
			}
		}
		if w.FinishReason == "stop" {
			stopped++
		}
	}
	if stopped < 100 {
		t.Fatalf("only %d of 200 answers ended at a stop sequence: the stops test too little", stopped)
	}
	t.Logf("%d of 200 ended at a stop sequence", stopped)
}

// A completion's log-probabilities tile its text, as OpenAI's do: the
// tokens joined are the text, and each token's text_offset is where it
// starts in the text, in characters, streamed chunk after chunk or whole.
// They were each token decoded alone (no spaces between words) at running
// byte offsets, which pointed into the middle of other words.
func TestOpenAILogprobsTileTheText(t *testing.T) {
	_, url := startGenerators(t)
	client, ctx := sdk(url), context.Background()
	for _, prompt := range []string{"abc def", "the city", "héllo wörld"} {
		params := openai.CompletionNewParams{Model: "tiny-gpt", MaxTokens: openai.Int(8), Temperature: openai.Float(0),
			Logprobs: openai.Int(2), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)}}
		whole, err := client.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		c := whole.Choices[0]
		check := func(how, text string, tokens []string, offsets []int64) {
			t.Helper()
			start := 0
			runes := []rune(text)
			if len(tokens) != 8 || len(offsets) != len(tokens) {
				t.Fatalf("%s %q: %d tokens, %d offsets, want 8 each", how, prompt, len(tokens), len(offsets))
			}
			for i, tok := range tokens {
				end := start + len([]rune(tok))
				if offsets[i] != int64(start) || end > len(runes) || string(runes[start:end]) != tok {
					t.Fatalf("%s %q: token %d %q at text_offset %d, want %d in %q", how, prompt, i, tok, offsets[i], start, text)
				}
				start = end
			}
			if start != len(runes) {
				t.Fatalf("%s %q: the tokens end at character %d of %d in %q", how, prompt, start, len(runes), text)
			}
		}
		check("whole", c.Text, c.Logprobs.Tokens, c.Logprobs.TextOffset)

		stream := client.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		var tokens []string
		var offsets []int64
		for stream.Next() {
			for _, ch := range stream.Current().Choices {
				text.WriteString(ch.Text)
				tokens = append(tokens, ch.Logprobs.Tokens...)
				offsets = append(offsets, ch.Logprobs.TextOffset...)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != c.Text {
			t.Fatalf("%q: streamed %q, whole %q", prompt, text.String(), c.Text)
		}
		check("streamed", text.String(), tokens, offsets)
	}
}
