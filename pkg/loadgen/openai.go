package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// ProtoOpenAI benchmarks an OpenAI-compatible text generation endpoint
// (infer serve, vLLM, TGI, llama.cpp's server...), streaming.
const ProtoOpenAI = "openai"

// Gen is what a text generation request measured.
type Gen struct {
	// TTFT is the time to the first content; E2E to the end of the stream.
	TTFT, E2E time.Duration
	// Tokens is the output tokens: the server's usage count when it gives
	// one, else one a content chunk.
	Tokens int
	// Chunks is the content chunks; Gaps the time between them.
	Chunks int
	Gaps   []time.Duration
}

// TPOT is the mean time per output token after the first.
func (g *Gen) TPOT() time.Duration {
	if g.Tokens < 2 {
		return 0
	}
	return (g.E2E - g.TTFT) / time.Duration(g.Tokens-1)
}

// TokensPerGap is how many inter-token intervals each gap between chunks
// stands for: a chunk carrying several tokens counts as that many, each an
// even share of the gap before it. 1 when every chunk carries one token.
func (g *Gen) TokensPerGap() float64 {
	if g.Chunks > 1 && g.Tokens > g.Chunks {
		return float64(g.Tokens-1) / float64(g.Chunks-1)
	}
	return 1
}

// ITL returns gap i's inter-token latency: the gap shared evenly among
// the tokens it stands for (TokensPerGap). It is the one definition of
// inter-token latency: the report's distribution and goodput's itl
// objective both use it.
func (g *Gen) ITL(i int) time.Duration {
	return time.Duration(float64(g.Gaps[i]) / g.TokensPerGap())
}

// OpenAI streams completions (or chat completions) of Prompts, in turn.
type OpenAI struct {
	Client *http.Client
	// URL is the server's base, such as http://localhost:8000.
	URL   string
	Model string
	Chat  bool
	// Prompts are sent in turn; MaxTokens gives each its output length
	// (one a prompt, or MaxTokensMin..MaxTokensMax at random).
	Prompts                    []string
	MaxTokensMin, MaxTokensMax int
	Temperature                float64
	next                       atomic.Uint64
}

// Do sends one streamed request and reads it to its end.
func (t *OpenAI) Do(ctx context.Context, r *Result) {
	n := t.next.Add(1) - 1
	prompt := t.Prompts[n%uint64(len(t.Prompts))]
	maxTokens := t.MaxTokensMin
	if t.MaxTokensMax > t.MaxTokensMin {
		maxTokens += rand.IntN(t.MaxTokensMax - t.MaxTokensMin + 1)
	}
	body := map[string]any{"model": t.Model, "max_tokens": maxTokens, "temperature": t.Temperature, "stream": true,
		"stream_options": map[string]bool{"include_usage": true}}
	path := "/v1/completions"
	if t.Chat {
		path = "/v1/chat/completions"
		body["messages"] = []map[string]string{{"role": "user", "content": prompt}}
	} else {
		body["prompt"] = prompt
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(t.URL, "/")+path, bytes.NewReader(b))
	if err != nil {
		r.Fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	r.Start = time.Now()
	g := &Gen{}
	r.Gen = g
	resp, err := t.Client.Do(req)
	if err != nil {
		r.End = time.Now()
		r.Fail(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		r.End = time.Now()
		r.FailStatus(resp.StatusCode, string(msg))
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/event-stream") {
		r.End = time.Now()
		r.Fail(fmt.Errorf("the answer is %q, not a stream of server-sent events (text/event-stream): is this the server's HTTP port, 8000 by default?", ct))
		return
	}
	if err := readStream(resp.Body, r.Start, g, maxTokens); err != nil {
		r.End = time.Now()
		r.Fail(err)
		return
	}
	r.End = time.Now()
	g.E2E = r.End.Sub(r.Start)
	// A streamed answer's phases are known only at its end: the server
	// sends Server-Timing as a trailer, read once the body is.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	timing := resp.Trailer.Get("Server-Timing")
	if timing == "" {
		timing = resp.Header.Get("Server-Timing")
	}
	r.ServerReported = serverPhases(r, timing)
}

// readStream reads server-sent completion chunks to [DONE]. A stream of
// more content chunks than the maxTokens asked (each chunk carries one
// token's text or more) is malformed: reading stops there, so that a
// server that never ends a stream costs a bounded record, not memory for
// as long as the request's timeout lets it run.
func readStream(body io.Reader, start time.Time, g *Gen, maxTokens int) error {
	if maxTokens <= 0 { // the server's default length
		maxTokens = 1 << 16
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last time.Time
	usage := -1
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue // blank lines, comments, other fields
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			if g.Chunks == 0 {
				return fmt.Errorf("malformed stream: no content before [DONE]")
			}
			g.Tokens = g.Chunks
			if usage > 0 {
				g.Tokens = usage
			}
			return nil
		}
		var chunk struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("malformed stream chunk %.80q: %v", data, err)
		}
		if chunk.Error != nil {
			return fmt.Errorf("server error mid-stream: %s", chunk.Error.Message)
		}
		if chunk.Usage != nil {
			usage = chunk.Usage.CompletionTokens
		}
		if len(chunk.Choices) == 0 || chunk.Choices[0].Text == "" && chunk.Choices[0].Delta.Content == "" {
			continue
		}
		if g.Chunks == maxTokens {
			return fmt.Errorf("malformed stream: more content chunks than the %d tokens asked", maxTokens)
		}
		now := time.Now()
		if g.Chunks == 0 {
			g.TTFT = now.Sub(start)
		} else {
			g.Gaps = append(g.Gaps, now.Sub(last))
		}
		last = now
		g.Chunks++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("malformed stream: it ended without [DONE]")
}

// genRecorder accumulates generation measures.
type genRecorder struct {
	TTFT, ITL, TPOT, E2E *hdr.Histogram
	Tokens               int64
	// Good counts the requests within every generation objective, and
	// GoodTokens their tokens.
	Good, GoodTokens int64
}

func newGenRecorder() *genRecorder {
	return &genRecorder{TTFT: newHist(), ITL: newHist(), TPOT: newHist(), E2E: newHist()}
}

func (g *genRecorder) record(x *Gen, objectives []Objective) {
	_ = g.TTFT.RecordValue(micros(x.TTFT))
	_ = g.E2E.RecordValue(micros(x.E2E))
	if x.Tokens >= 2 {
		_ = g.TPOT.RecordValue(micros(x.TPOT()))
	}
	per := max(int64(x.TokensPerGap()+0.5), 1)
	for i := range x.Gaps {
		_ = g.ITL.RecordValues(micros(x.ITL(i)), per)
	}
	g.Tokens += int64(x.Tokens)
	if goodGen(x, objectives) {
		g.Good++
		g.GoodTokens += int64(x.Tokens)
	}
}

func (g *genRecorder) merge(o *genRecorder) {
	g.TTFT.Merge(o.TTFT)
	g.ITL.Merge(o.ITL)
	g.TPOT.Merge(o.TPOT)
	g.E2E.Merge(o.E2E)
	g.Tokens += o.Tokens
	g.Good += o.Good
	g.GoodTokens += o.GoodTokens
}

// goodGen reports whether x meets every generation objective (ttft, tpot,
// itl as its worst inter-token latency, Gen.ITL, e2e).
func goodGen(x *Gen, objectives []Objective) bool {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, o := range objectives {
		var v float64
		switch o.Metric {
		case "ttft":
			v = ms(x.TTFT)
		case "tpot":
			v = ms(x.TPOT())
		case "e2e":
			v = ms(x.E2E)
		case "itl":
			for i := range x.Gaps {
				v = max(v, ms(x.ITL(i)))
			}
		default:
			continue
		}
		if v >= o.Limit {
			return false
		}
	}
	return true
}

// GenReport is a text generation run's figures.
type GenReport struct {
	TTFT Percentiles `json:"ttft"`
	ITL  Percentiles `json:"itl"`
	TPOT Percentiles `json:"tpot"`
	E2E  Percentiles `json:"e2e"`
	// OutputTokens, and OutputTokensPerSecond over the run.
	OutputTokens          int64   `json:"output_tokens"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`
	// Goodput is the requests, and TokenGoodput their tokens, per second
	// that met every generation objective (all requests without any).
	Goodput      float64 `json:"goodput"`
	TokenGoodput float64 `json:"token_goodput"`
}

func newGenReport(g *genRecorder, seconds float64) *GenReport {
	r := &GenReport{TTFT: percentiles(g.TTFT), ITL: percentiles(g.ITL), TPOT: percentiles(g.TPOT), E2E: percentiles(g.E2E), OutputTokens: g.Tokens}
	if seconds > 0 {
		r.OutputTokensPerSecond = float64(g.Tokens) / seconds
		r.Goodput = float64(g.Good) / seconds
		r.TokenGoodput = float64(g.GoodTokens) / seconds
	}
	return r
}

// SyntheticPrompts makes n prompts of inputMin..inputMax words (a word is
// about a token for WordPiece and BPE vocabularies): each begins with
// words of its own, so no prefix cache can serve it, unless sharedPrefix
// words, the same for all, come first.
func SyntheticPrompts(n, inputMin, inputMax, sharedPrefix int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	words := strings.Fields(`the of and to in is was for on that with as by at from his her it an were are which this be
		or has had not but first one their its new after who they have two been more other all she time during into over
		city only would year most later may when under some world between three while part about can school where state`)
	pick := func(b *strings.Builder, k int) {
		for range k {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
	}
	var prefix strings.Builder
	pick(&prefix, sharedPrefix)
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		b.WriteString(prefix.String())
		fmt.Fprintf(&b, "%x request %d ", rng.Uint32(), i) // unique from here on
		k := inputMin
		if inputMax > inputMin {
			k += rng.IntN(inputMax - inputMin + 1)
		}
		pick(&b, max(k-3, 1))
		out[i] = strings.TrimSpace(b.String())
	}
	return out
}
