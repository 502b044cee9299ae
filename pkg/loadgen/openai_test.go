package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// streamServer streams chunks content chunks of perChunk tokens each,
// gap apart, reporting usage when asked, then [DONE].
func streamServer(t *testing.T, chunks, perChunk int, gap time.Duration, usage bool, tail string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range chunks {
			time.Sleep(gap)
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"%s\"}]}\n\n", strings.Repeat("w ", perChunk))
			_ = rc.Flush()
			_ = i
		}
		if usage {
			fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":%d}}\n\n", chunks*perChunk)
		}
		fmt.Fprint(w, tail)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runOpenAI(t *testing.T, url string, n uint64, objectives []Objective) (*Summary, error) {
	t.Helper()
	target := &OpenAI{Client: &http.Client{}, URL: url, Model: "m", Prompts: []string{"hello"}, MaxTokensMin: 8, MaxTokensMax: 8}
	return Run(context.Background(), target, Options{Concurrency: 2, Requests: n, Timeout: 10 * time.Second, Objectives: objectives})
}

// A chunk may carry several tokens: the server's usage count says how
// many, and each gap is shared among them.
func TestOpenAIStreamCountsTokensNotChunks(t *testing.T) {
	srv := streamServer(t, 5, 3, 20*time.Millisecond, true, "data: [DONE]\n\n")
	sum, err := runOpenAI(t, srv.URL, 4, nil)
	if err != nil || sum.OK != 4 {
		t.Fatalf("%v: %d ok", err, sum.OK)
	}
	g := newGenReport(sum.Gen, sum.Window.Seconds())
	if g.OutputTokens != 4*15 {
		t.Fatalf("%d output tokens, want 60 (5 chunks of 3, 4 requests)", g.OutputTokens)
	}
	// TTFT about one gap; TPOT about the 4 later gaps over 14 tokens.
	if g.TTFT.P50 < 15 || g.TTFT.P50 > 200 || g.TPOT.P50 < 4 || g.TPOT.P50 > 40 {
		t.Fatalf("ttft p50 %.1fms, tpot p50 %.1fms; want about 20 and 5.7", g.TTFT.P50, g.TPOT.P50)
	}
	// The inter-token latencies are the chunk gaps split three ways.
	if g.ITL.P50 < 4 || g.ITL.P50 > 40 || sum.Gen.ITL.TotalCount() < 4*4*2 {
		t.Fatalf("itl p50 %.1fms over %d samples", g.ITL.P50, sum.Gen.ITL.TotalCount())
	}
	// Goodput: with a TTFT objective of 1 ms nothing is good; of 5 s, all.
	if sum, _ := runOpenAI(t, srv.URL, 2, []Objective{{Metric: "ttft", Limit: 1}}); sum.Gen.Good != 0 {
		t.Fatalf("%d good requests under ttft<1ms", sum.Gen.Good)
	}
	if sum, _ := runOpenAI(t, srv.URL, 2, []Objective{{Metric: "ttft", Limit: 5000}}); sum.Gen.Good != 2 || sum.Gen.GoodTokens != 30 {
		t.Fatalf("%d good requests, %d tokens under ttft<5s", sum.Gen.Good, sum.Gen.GoodTokens)
	}
}

// Without usage, each content chunk counts as a token; a stream that
// breaks off or says nothing is a failure.
func TestOpenAIMalformedStreams(t *testing.T) {
	srv := streamServer(t, 3, 1, 0, false, "data: [DONE]\n\n")
	if sum, _ := runOpenAI(t, srv.URL, 1, nil); sum.OK != 1 || sum.Gen.Tokens != 3 {
		t.Fatalf("no usage: %d ok, %d tokens, want 3 chunks as 3 tokens", sum.OK, sum.Gen.Tokens)
	}
	for name, tail := range map[string]string{"no [DONE]": "", "bad JSON": "data: {\"choices\":\n\n", "error": "data: {\"error\":{\"message\":\"boom\"}}\n\n"} {
		srv := streamServer(t, 2, 1, 0, false, tail)
		if sum, _ := runOpenAI(t, srv.URL, 1, nil); sum.OK != 0 || len(sum.Errors) != 1 {
			t.Errorf("%s: %d ok, errors %v; want a failure", name, sum.OK, sum.Errors)
		}
	}
	if sum, _ := runOpenAI(t, streamServer(t, 0, 1, 0, false, "data: [DONE]\n\n").URL, 1, nil); sum.OK != 0 {
		t.Error("a stream with no content counted as a success")
	}
	// More chunks than the 8 tokens asked: the reading stops at the 9th
	// (a server that never ended its stream once grew the client's memory
	// by 22 MB/s until the request's timeout).
	sum, _ := runOpenAI(t, streamServer(t, 9, 1, 0, false, "data: [DONE]\n\n").URL, 1, nil)
	if sum.OK != 0 || len(sum.Errors) != 1 || !strings.Contains(fmt.Sprint(sum.ErrorMessages), "more content chunks than the 8 tokens asked") {
		t.Errorf("9 chunks for 8 tokens: %d ok, errors %v; want a failure naming it", sum.OK, sum.ErrorMessages)
	}
}

func TestSyntheticPrompts(t *testing.T) {
	unique := SyntheticPrompts(50, 20, 40, 0, 1)
	shared := SyntheticPrompts(50, 20, 40, 100, 1)
	for i := range unique {
		n := len(strings.Fields(unique[i]))
		if n < 20 || n > 40 {
			t.Fatalf("prompt %d has %d words, want 20..40", i, n)
		}
		if i > 0 && strings.Fields(unique[i])[0] == strings.Fields(unique[i-1])[0] {
			t.Fatalf("prompts %d and %d begin alike", i-1, i)
		}
		if a, b := strings.Fields(shared[i]), strings.Fields(shared[0]); len(a) < 100 || strings.Join(a[:100], " ") != strings.Join(b[:100], " ") {
			t.Fatalf("prompt %d does not share the 100-word prefix", i)
		}
	}
}

// An answer that is not a stream (the metrics port's page) is said to be
// the wrong port, where it read as a stream ended without [DONE].
func TestOpenAIAnswerThatIsNoStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# HELP infer_requests_total Requests.\n")
	}))
	defer srv.Close()
	sum, err := runOpenAI(t, srv.URL, 2, nil)
	if err != nil || sum.OK != 0 || !strings.Contains(fmt.Sprint(sum.ErrorMessages), "not a stream of server-sent events") {
		t.Fatalf("%v: %d ok, errors %v; want each refused as no stream", err, sum.OK, sum.ErrorMessages)
	}
}
