package openai

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/infer-serving/infer/pkg/core"
	"github.com/infer-serving/infer/pkg/generate"
	"github.com/infer-serving/infer/pkg/httpapi"
	"github.com/infer-serving/infer/pkg/runner"
)

func (s *API) serveGenerate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m, name, err := s.generate(w, r)
	s.RecordGeneration(m, name, time.Since(start), err)
}

// choice is one generated answer: its session, the prompt it continues,
// and its place among the response's choices.
type choice struct {
	*core.Generation
	index  int
	prompt int    // index of its prompt
	echo   string // the prompt's text, when echoed
	// offset is the text's length in characters before the next token
	// whose log-probabilities are rendered (the completions shape's
	// text_offset): the echoed prompt's, then each token's as rendered.
	offset int
}

// reply holds what one response says, however it is sent.
type reply struct {
	id, object, chunkObject, model string
	created                        int64
	chat, logprobs, streamed       bool
}

// generate answers a completion or chat completion, and returns the
// model (and the name asked for) and the error it answered with, if any.
func (s *API) generate(w http.ResponseWriter, r *http.Request) (*runner.Model, string, error) {
	chat := strings.HasSuffix(r.URL.Path, "/chat/completions")
	var req request
	fail := func(m *runner.Model, err error) (*runner.Model, string, error) {
		openAIError(w, err)
		return m, req.Model, err
	}
	if err := decode(w, r, s.maxBody, &req); err != nil {
		return fail(nil, err)
	}
	pl, err := req.plan(chat)
	if err == nil && req.Model == "" {
		err = errNoModel
	}
	if err == nil && req.Stream {
		err = httpapi.Streamable(r, "stream")
	}
	if err != nil {
		return fail(nil, err)
	}
	m, err := s.Route(r.Context(), req.Model, "", req.User, r.Header.Get)
	if err != nil {
		return fail(nil, err)
	}
	if req.User != "" || req.SafetyIdentifier != "" {
		slog.Debug("generation", "model", req.Model, "user", req.User, "safety_identifier", req.SafetyIdentifier)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	all, err := s.start(ctx, m, pl)
	if err != nil {
		return fail(m, err)
	}
	rp := reply{id: fmt.Sprintf("cmpl-%016x", rand.Uint64()), object: "text_completion", chunkObject: "text_completion",
		model: m.Metadata().Name, created: time.Now().Unix(), chat: chat, logprobs: pl.logprobs}
	if chat {
		rp.id, rp.object, rp.chunkObject = "chat"+rp.id, "chat.completion", "chat.completion.chunk"
	}
	if pl.prompts[0].Stream {
		rp.streamed = true
		return m, req.Model, s.stream(w, r, rp, all, pl.prompts[0].IncludeUsage, cancel)
	}
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, c := range all {
		wg.Go(func() { errs[i] = c.Drain() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fail(m, err)
		}
	}
	chosen := best(all, pl)
	choices := make([]any, len(chosen))
	for i, c := range chosen {
		choices[i] = rp.choice(c, c.echo+c.Text, c.Logprobs, c.Finish)
	}
	w.Header().Set("Server-Timing", chosen[0].ServerTiming())
	writeJSON(w, http.StatusOK, map[string]any{"id": rp.id, "object": rp.object, "created": rp.created, "model": rp.model,
		"choices": choices, "usage": usage(all)})
	return m, req.Model, nil
}

// start queues every prompt's best_of sequences. With a seed, the j-th
// sequence of a prompt is sampled with seed + j: reproducible, and not
// all alike.
func (s *API) start(ctx context.Context, m *runner.Model, pl plan) ([]*choice, error) {
	var all []*choice
	group := generate.NewGroup() // the engine shares its slots between requests
	for pi, p := range pl.prompts {
		for j := range pl.bestOf {
			q := p
			q.Group = group
			if q.Seeded {
				q.Seed += uint64(j)
			}
			g, err := s.StartGeneration(ctx, m, q)
			if err != nil {
				for _, c := range all {
					c.Cancel()
				}
				if len(pl.prompts) > 1 {
					err = fmt.Errorf("prompt[%d]: %w", pi, err)
				}
				return nil, err
			}
			c := &choice{Generation: g, index: pi*pl.n + j, prompt: pi}
			if pl.echo {
				c.echo = p.Prompt
				if p.PromptIDs != nil {
					c.echo = g.PromptText()
				}
				c.offset = utf8.RuneCountInString(c.echo)
			}
			all = append(all, c)
		}
	}
	return all, nil
}

// best keeps, of each prompt's best_of sequences, the n with the highest
// mean log-probability per token (OpenAI's best_of), and numbers them.
func best(all []*choice, pl plan) []*choice {
	if pl.bestOf == pl.n {
		return all
	}
	var out []*choice
	for g := range slices.Chunk(all, pl.bestOf) {
		ranked := slices.Clone(g)
		slices.SortStableFunc(ranked, func(a, b *choice) int { return cmp.Compare(meanLogprob(b), meanLogprob(a)) })
		for j, c := range ranked[:pl.n] {
			c.index = c.prompt*pl.n + j
			if !pl.logprobs {
				c.Logprobs = nil
			}
			out = append(out, c)
		}
	}
	return out
}

func meanLogprob(c *choice) float64 {
	if len(c.Logprobs) == 0 {
		return 0
	}
	var sum float64
	for _, t := range c.Logprobs {
		sum += float64(t.Logprob)
	}
	return sum / float64(len(c.Logprobs))
}

// update is one streamed step of one choice.
type update struct {
	c        *choice
	delta    string
	logprobs []generate.TokenLogprobs
	done     bool
	err      error
}

// stream answers with server-sent events: every choice's sequence runs
// in a goroutine of its own that this one waits for, and their text is
// sent as it is released, each chunk naming its choice.
func (s *API) stream(w http.ResponseWriter, r *http.Request, rp reply, all []*choice, includeUsage bool, cancel context.CancelFunc) error {
	// The phases are known only at the end: Server-Timing is a trailer.
	w.Header().Set("Trailer", "Server-Timing")
	events := httpapi.StartSSE(w)
	updates := make(chan update)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait: a client gone ends every sequence
	for _, c := range all {
		wg.Go(func() {
			for {
				delta, done, err := c.Next()
				var lp []generate.TokenLogprobs
				if rp.logprobs {
					lp = c.FreshLogprobs()
				}
				updates <- update{c: c, delta: delta, logprobs: lp, done: done || err != nil, err: err}
				if done || err != nil {
					return
				}
			}
		})
	}
	chunk := func(choices ...any) map[string]any {
		return map[string]any{"id": rp.id, "object": rp.chunkObject, "created": rp.created, "model": rp.model, "choices": choices}
	}
	var failed error
	send := func(v any) {
		if failed == nil {
			if err := events.Send(v); err != nil {
				failed = httpapi.ClientGone(r, err)
				cancel()
			}
		}
	}
	for _, c := range all {
		switch {
		case rp.chat:
			send(chunk(map[string]any{"index": c.index, "delta": map[string]any{"role": "assistant", "content": ""}, "logprobs": nil, "finish_reason": nil}))
		case c.echo != "":
			send(chunk(rp.choice(c, c.echo, nil, nil)))
		}
	}
	for left := len(all); left > 0; {
		u := <-updates
		if u.done {
			left--
		}
		if u.err != nil {
			if failed == nil {
				send(map[string]any{"error": map[string]any{"message": u.err.Error(), "type": "server_error"}})
				failed = u.err
				cancel()
			}
			continue
		}
		if u.delta == "" && !u.done && len(u.logprobs) == 0 {
			continue
		}
		var finish any
		if u.done {
			finish = u.c.Finish
		}
		send(chunk(rp.choice(u.c, u.delta, u.logprobs, finish)))
	}
	if failed != nil {
		return failed
	}
	if includeUsage {
		send(map[string]any{"id": rp.id, "object": rp.chunkObject, "created": rp.created, "model": rp.model, "choices": []any{}, "usage": usage(all)})
	}
	send("[DONE]")
	w.Header().Set("Server-Timing", all[0].ServerTiming())
	return failed
}

// choice renders one choice, whole or as a chunk's delta.
func (rp reply) choice(c *choice, text string, lp []generate.TokenLogprobs, finish any) map[string]any {
	out := map[string]any{"index": c.index, "finish_reason": finish, "logprobs": nil}
	switch {
	case !rp.chat:
		out["text"] = text
	case !rp.streamed:
		out["message"] = map[string]any{"role": "assistant", "content": text, "refusal": nil}
	default:
		out["delta"] = map[string]any{"content": text}
	}
	if rp.logprobs {
		out["logprobs"] = rp.renderLogprobs(lp, &c.offset)
	}
	return out
}

// renderLogprobs gives tokens' log-probabilities in the chat shape
// ({content: [{token, logprob, bytes, top_logprobs}]}) or the completions
// one (parallel lists, top_logprobs as token → log-probability maps, and
// each token's offset in the text, in characters as OpenAI counts them,
// from *offset, which it moves past the tokens rendered: a streamed
// choice's offsets go on from chunk to chunk).
func (rp reply) renderLogprobs(lp []generate.TokenLogprobs, offset *int) any {
	if rp.chat {
		content := make([]map[string]any, len(lp))
		for i, t := range lp {
			top := make([]map[string]any, len(t.Top))
			for j, a := range t.Top {
				top[j] = map[string]any{"token": a.Token, "logprob": a.Logprob, "bytes": []byte(a.Token)}
			}
			content[i] = map[string]any{"token": t.Token, "logprob": t.Logprob, "bytes": []byte(t.Token), "top_logprobs": top}
		}
		return map[string]any{"content": content, "refusal": nil}
	}
	tokens, logprobs, tops, offsets := make([]string, len(lp)), make([]float32, len(lp)), make([]map[string]float32, len(lp)), make([]int, len(lp))
	for i, t := range lp {
		tokens[i], logprobs[i], offsets[i] = t.Token, t.Logprob, *offset
		tops[i] = map[string]float32{}
		for _, a := range t.Top {
			tops[i][a.Token] = a.Logprob
		}
		*offset += utf8.RuneCountInString(t.Token)
	}
	return map[string]any{"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}
}

// usage counts a response's tokens: each prompt once, every sequence's
// output (best_of's discarded ones too: they were generated).
func usage(all []*choice) openAIUsage {
	var u openAIUsage
	cached := 0
	seen := map[int]bool{}
	for _, c := range all {
		if !seen[c.prompt] {
			seen[c.prompt] = true
			u.PromptTokens += c.PromptTokens
			cached += c.CachedTokens
		}
		u.CompletionTokens += c.OutputTokens()
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	u.PromptTokensDetails = &tokenDetails{CachedTokens: cached}
	return u
}

type openAIUsage struct {
	PromptTokens        int           `json:"prompt_tokens"`
	CompletionTokens    int           `json:"completion_tokens"`
	TotalTokens         int           `json:"total_tokens"`
	PromptTokensDetails *tokenDetails `json:"prompt_tokens_details,omitempty"`
}

type tokenDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }
