package openai

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/protocol"
	"github.com/infer-serving/infer/pkg/runner"
)

// Bounds on a request's fan-out, as OpenAI sets them.
const (
	maxN      = 128 // choices per prompt
	maxBestOf = 20
	maxPrompt = 64 // prompts in one completions request
	// maxMessages bounds a chat request's messages, and maxParts one
	// message's content parts: OpenAI documents neither; each is counted
	// (protocol.JSONLen) before any is decoded, since decoding makes a struct of
	// about 100 bytes for every 3 bytes of "{}," (a body of empty
	// messages took about 20 times its size).
	maxMessages = 4096
	maxParts    = 256
	// maxEmbeddingInputs bounds an embeddings input list, as OpenAI's
	// API reference does ("any array must be 2048 dimensions or less").
	maxEmbeddingInputs = 2048
	// maxPromptIDs bounds a completions prompt's token ids, over all its
	// prompts (a bound of this server's, far past any context here).
	maxPromptIDs = 1 << 20
	// maxLogitBias bounds logit_bias's entries (a bound of this
	// server's: OpenAI documents none), counted before it is decoded.
	maxLogitBias = 1024
	// maxSequences bounds the sequences one request generates (its
	// prompts times best_of, or n): as many as n alone allows. 64 prompts
	// of n 128 would queue 8,192 sequences, hours of a small generator's
	// time, ahead of every other client's.
	maxSequences = maxN
	// maxCompletionLogprobs bounds /v1/completions' logprobs (an int).
	maxCompletionLogprobs = 5
)

// request is a completions or chat completions body: every field of
// OpenAI's two APIs, each honoured or refused by name in plan. Fields
// no API has are refused while decoding (json: unknown field "x").
type request struct {
	Model    string          `json:"model"`
	Prompt   json.RawMessage `json:"prompt"`   // completions
	Messages json.RawMessage `json:"messages"` // chat: chatPrompt decodes it
	Suffix   *string         `json:"suffix"`
	Echo     bool            `json:"echo"`
	BestOf   *int            `json:"best_of"`

	MaxTokens   *int            `json:"max_tokens"`
	MaxCompl    *int            `json:"max_completion_tokens"`
	Temperature *float64        `json:"temperature"`
	TopP        *float64        `json:"top_p"`
	TopK        *int            `json:"top_k"` // vLLM's and Ollama's extension
	N           *int            `json:"n"`
	Seed        *int64          `json:"seed"`
	Stop        json.RawMessage `json:"stop"`
	Stream      bool            `json:"stream"`
	StreamOpts  *streamOptions  `json:"stream_options"`
	Logprobs    json.RawMessage `json:"logprobs"` // completions: an int; chat: a bool
	TopLogprobs *int            `json:"top_logprobs"`
	LogitBias   json.RawMessage `json:"logit_bias"` // token id: bias, counted before it is decoded
	Presence    *float64        `json:"presence_penalty"`
	Frequency   *float64        `json:"frequency_penalty"`
	User        string          `json:"user"`

	ResponseFormat    *struct{ Type string } `json:"response_format"`
	Tools             json.RawMessage        `json:"tools"`
	ToolChoice        json.RawMessage        `json:"tool_choice"`
	ParallelToolCalls *bool                  `json:"parallel_tool_calls"`
	Functions         json.RawMessage        `json:"functions"`
	FunctionCall      json.RawMessage        `json:"function_call"`
	Store             *bool                  `json:"store"`
	Metadata          json.RawMessage        `json:"metadata"` // refused unless empty: never decoded
	ServiceTier       *string                `json:"service_tier"`
	Modalities        json.RawMessage        `json:"modalities"`
	Audio             json.RawMessage        `json:"audio"`
	Prediction        json.RawMessage        `json:"prediction"`
	ReasoningEffort   *string                `json:"reasoning_effort"`
	Verbosity         *string                `json:"verbosity"`
	WebSearch         json.RawMessage        `json:"web_search_options"`
	PromptCacheKey    string                 `json:"prompt_cache_key"`
	SafetyIdentifier  string                 `json:"safety_identifier"`
}

type streamOptions struct {
	IncludeUsage       bool `json:"include_usage"`
	IncludeObfuscation bool `json:"include_obfuscation"`
}

// plan is what a request asks of the engine: prompts, each generated n
// times (best of bestOf), with params.
type plan struct {
	prompts  []generate.Params // Prompt or PromptIDs set; the rest alike
	n        int
	bestOf   int
	echo     bool
	logprobs bool // the client asked for them (bestOf asks the engine too)
	chat     bool
}

// errNoModel refuses a request that names no model: OpenAI's model is
// required (GET /v1/models lists them).
var errNoModel = bad("model: required (GET /v1/models lists them)")

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{runner.ErrInvalidInput}, a...)...)
}

// set reports whether a raw field holds a value.
func set(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// refused names the fields a request sets that this server cannot honour.
func (o request) refused(chat bool) error {
	switch {
	case set(o.Tools) && string(o.Tools) != "[]":
		return bad("tools: this server does not call tools")
	case set(o.ToolChoice) && string(o.ToolChoice) != `"none"`:
		return bad("tool_choice: this server does not call tools (only \"none\")")
	case set(o.Functions):
		return bad("functions: this server does not call functions")
	case set(o.FunctionCall) && string(o.FunctionCall) != `"none"`:
		return bad("function_call: this server does not call functions (only \"none\")")
	case o.ResponseFormat != nil && o.ResponseFormat.Type != "text":
		return bad("response_format: type %s: this server does not constrain decoding to JSON (only \"text\")", protocol.Clip(o.ResponseFormat.Type))
	case o.Suffix != nil && *o.Suffix != "":
		return bad("suffix: the models served here do not fill in the middle")
	case o.Store != nil && *o.Store:
		return bad("store: this server keeps no completions")
	case set(o.Metadata) && string(bytes.TrimSpace(o.Metadata)) != "{}":
		return bad("metadata: this server keeps no completions to tag")
	case o.ServiceTier != nil && *o.ServiceTier != "auto" && *o.ServiceTier != "default":
		return bad("service_tier %s: this server has one tier (\"auto\" or \"default\")", protocol.Clip(*o.ServiceTier))
	case set(o.Modalities) && !textOnly(o.Modalities):
		return bad("modalities %s: only [\"text\"]", protocol.Clip(string(o.Modalities)))
	case set(o.Audio):
		return bad("audio: the models served here make text only")
	case set(o.Prediction):
		return bad("prediction: predicted outputs are not supported")
	case o.ReasoningEffort != nil:
		return bad("reasoning_effort: the models served here do not reason")
	case o.Verbosity != nil:
		return bad("verbosity: not supported")
	case set(o.WebSearch):
		return bad("web_search_options: this server does not search the web")
	case o.StreamOpts != nil && !o.Stream:
		return bad("stream_options: only with stream: true")
	}
	return o.misplaced(chat)
}

// misplaced names a field that belongs to the other API: completions'
// prompt, echo, best_of and suffix in a chat request, chat's messages,
// top_logprobs and max_completion_tokens in a completions one.
func (o request) misplaced(chat bool) error {
	fields := []struct {
		name string
		set  bool
	}{{"messages", set(o.Messages)}, {"top_logprobs", o.TopLogprobs != nil}, {"max_completion_tokens", o.MaxCompl != nil}}
	api, other := "/v1/chat/completions", "/v1/completions takes prompt"
	if chat {
		fields = []struct {
			name string
			set  bool
		}{{"prompt", set(o.Prompt)}, {"echo", o.Echo}, {"best_of", o.BestOf != nil}, {"suffix", o.Suffix != nil}}
		api, other = "/v1/completions", "chat takes messages"
	}
	for _, f := range fields {
		if f.set {
			return bad("%s: a field of %s; %s", f.name, api, other)
		}
	}
	return nil
}

// plan translates the request into the engine's terms.
func (o request) plan(chat bool) (plan, error) {
	pl := plan{chat: chat, n: 1, echo: o.Echo}
	if err := o.refused(chat); err != nil {
		return pl, err
	}
	var p generate.Params
	switch {
	case o.MaxCompl != nil:
		p.MaxTokens = *o.MaxCompl
	case o.MaxTokens != nil:
		p.MaxTokens = *o.MaxTokens
	}
	if (o.MaxTokens != nil || o.MaxCompl != nil) && p.MaxTokens < 1 {
		field := "max_tokens"
		if o.MaxCompl != nil {
			field = "max_completion_tokens"
		}
		return pl, bad("%s %d, want at least 1", field, p.MaxTokens)
	}
	p.Temperature = 1 // OpenAI's default
	if o.Temperature != nil {
		if *o.Temperature < 0 || *o.Temperature > 2 {
			return pl, bad("temperature %v, want 0 to 2", *o.Temperature)
		}
		p.Temperature = *o.Temperature
	}
	if o.TopP != nil {
		p.TopP = *o.TopP
	}
	if o.TopK != nil {
		p.TopK = *o.TopK
	}
	if o.Seed != nil {
		p.Seed, p.Seeded = uint64(*o.Seed), true
	}
	if o.Presence != nil {
		p.PresencePenalty = *o.Presence
	}
	if o.Frequency != nil {
		p.FrequencyPenalty = *o.Frequency
	}
	biases, err := logitBias(o.LogitBias)
	if err != nil {
		return pl, err
	}
	for k, v := range biases {
		var id int64
		if _, err := fmt.Sscan(k, &id); err != nil || fmt.Sprint(id) != k {
			return pl, bad("logit_bias: key %s, want a token id", protocol.Clip(k))
		}
		if p.LogitBias == nil {
			p.LogitBias = map[int64]float32{}
		}
		p.LogitBias[id] = v
	}
	if n := protocol.JSONLen(o.Stop); n > generate.MaxStops { // before it is decoded
		return pl, bad("stop: %d sequences, want at most %d", n, generate.MaxStops)
	}
	stop, err := stringOrList(o.Stop, "stop")
	if err != nil {
		return pl, err
	}
	if len(stop) > generate.MaxStops {
		return pl, bad("stop: %d sequences, want at most %d", len(stop), generate.MaxStops)
	}
	p.Stop, p.Stream = stop, o.Stream
	p.IncludeUsage = o.StreamOpts != nil && o.StreamOpts.IncludeUsage
	if err := o.logprobs(chat, &p); err != nil {
		return pl, err
	}
	pl.logprobs = p.Logprobs
	if o.N != nil {
		if *o.N < 1 || *o.N > maxN {
			return pl, bad("n %d, want 1 to %d", *o.N, maxN)
		}
		pl.n = *o.N
	}
	pl.bestOf = pl.n
	if o.BestOf != nil {
		switch {
		case *o.BestOf < pl.n || *o.BestOf > maxBestOf:
			return pl, bad("best_of %d, want n (%d) to %d", *o.BestOf, pl.n, maxBestOf)
		case *o.BestOf > pl.n && o.Stream:
			return pl, bad("best_of %d: choosing the best cannot be streamed", *o.BestOf)
		}
		pl.bestOf = *o.BestOf
		p.Logprobs = p.Logprobs || pl.bestOf > pl.n // ranked by log-probability
	}
	if o.Echo && p.Logprobs {
		return pl, bad("echo with logprobs: the prompt's log-probabilities are not computed")
	}
	if chat {
		p.Prompt, err = chatPrompt(o.Messages)
		if err != nil {
			return pl, err
		}
		pl.prompts = []generate.Params{p}
		return pl, nil
	}
	if pl.prompts, err = prompts(o.Prompt, p); err != nil {
		return pl, err
	}
	if n := len(pl.prompts) * pl.bestOf; n > maxSequences {
		field := "n"
		if pl.bestOf > pl.n {
			field = "best_of"
		}
		return pl, bad("%s %d for each of %d prompts: %d sequences, want at most %d in a request", field, pl.bestOf, len(pl.prompts), n, maxSequences)
	}
	return pl, nil
}

// logprobs reads logprobs (an int for completions, a bool for chat) and
// top_logprobs into p.
func (o request) logprobs(chat bool, p *generate.Params) error {
	if !set(o.Logprobs) {
		if o.TopLogprobs != nil {
			return bad("top_logprobs needs logprobs: true")
		}
		return nil
	}
	if chat {
		if err := json.Unmarshal(o.Logprobs, &p.Logprobs); err != nil {
			return bad("logprobs: want true or false")
		}
		if o.TopLogprobs != nil {
			if !p.Logprobs {
				return bad("top_logprobs needs logprobs: true")
			}
			if *o.TopLogprobs < 0 || *o.TopLogprobs > generate.MaxTopLogprobs {
				return bad("top_logprobs %d, want 0 to %d", *o.TopLogprobs, generate.MaxTopLogprobs)
			}
			p.TopLogprobs = *o.TopLogprobs
		}
		return nil
	}
	var k int
	if err := json.Unmarshal(o.Logprobs, &k); err != nil || k < 0 || k > maxCompletionLogprobs {
		return bad("logprobs: want an integer from 0 to %d", maxCompletionLogprobs)
	}
	p.Logprobs, p.TopLogprobs = true, k
	return nil
}

// prompts reads a completions prompt: a string, a list of strings, a list
// of token ids, or a list of lists of token ids; each becomes one p.
func prompts(raw json.RawMessage, p generate.Params) ([]generate.Params, error) {
	if !set(raw) {
		return nil, bad("prompt: want a string, a list of strings, or token ids")
	}
	// Before any list is decoded: a list of strings or of id lists is
	// that many prompts; a list of numbers is one prompt's token ids. Ids
	// are bounded by the commas that could part them (each decodes to 8
	// bytes from 2).
	first := firstElement(raw)
	flat := first == '-' || first >= '0' && first <= '9' // one prompt's token ids
	switch n := protocol.JSONLen(raw); {
	case !flat && n > maxPrompt:
		return nil, bad("prompt: %d prompts, want at most %d", n, maxPrompt)
	case (flat || first == '[') && bytes.Count(raw, []byte(",")) >= maxPromptIDs:
		return nil, bad("prompt: over %d token ids, want at most %d", maxPromptIDs, maxPromptIDs)
	}
	var out []generate.Params
	add := func(text string, ids []int64) {
		q := p
		q.Prompt, q.PromptIDs = text, ids
		out = append(out, q)
	}
	var one string
	var texts []string
	var ids []int64
	var idLists [][]int64
	switch {
	case json.Unmarshal(raw, &one) == nil:
		add(one, nil)
	case json.Unmarshal(raw, &texts) == nil:
		for _, t := range texts {
			add(t, nil)
		}
	case json.Unmarshal(raw, &ids) == nil:
		add("", ids)
	case json.Unmarshal(raw, &idLists) == nil:
		for _, l := range idLists {
			add("", l)
		}
	default:
		return nil, bad("prompt: want a string, a list of strings, a list of token ids, or a list of lists of token ids")
	}
	switch {
	case len(out) == 0:
		return nil, bad("prompt: an empty list")
	}
	for i, q := range out {
		if q.PromptIDs != nil && len(q.PromptIDs) == 0 {
			return nil, bad("prompt[%d]: no token ids", i)
		}
	}
	return out, nil
}

// stringOrList reads a string or a list of strings.
func stringOrList(raw json.RawMessage, field string) ([]string, error) {
	if !set(raw) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, bad("%s: want a string or a list of strings", field)
	}
	return many, nil
}

// logitBias decodes logit_bias, an object of token ids to biases, once
// its entries are counted: past maxLogitBias it is refused undecoded (a
// map entry for every 8 bytes of body took 12 times its size).
func logitBias(raw json.RawMessage) (map[string]float32, error) {
	if !set(raw) {
		return nil, nil
	}
	if n := protocol.JSONLen(raw); n > maxLogitBias {
		return nil, bad("logit_bias: %d entries, want at most %d", n, maxLogitBias)
	}
	var m map[string]float32
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, bad("logit_bias: want an object of token ids to numbers")
	}
	return m, nil
}

// textOnly reports whether modalities, a list counted before it is
// decoded, is ["text"].
func textOnly(modalities json.RawMessage) bool {
	var m []string
	return protocol.JSONLen(modalities) == 1 && json.Unmarshal(modalities, &m) == nil && len(m) == 1 && m[0] == "text"
}

// firstElement is the first byte of raw's first element when raw is a
// list (0 otherwise, or for an empty list).
func firstElement(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' {
		return 0
	}
	if rest := bytes.TrimSpace(raw[1:]); len(rest) > 0 && rest[0] != ']' {
		return rest[0]
	}
	return 0
}
