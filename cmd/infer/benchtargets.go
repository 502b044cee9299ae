package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/infer-serving/infer/pkg/loadgen"
)

// plainTarget is a plain HTTP request from --method, --header and --body.
func (o benchOptions) plainTarget(conns int) (loadgen.Target, func(), error) {
	if o.targets != "" {
		reqs, err := loadgen.ReadTargets(o.targets)
		if err != nil {
			return nil, nil, err
		}
		return httpTarget(reqs, conns, o.cold)
	}
	if !strings.HasPrefix(o.url, "http://") && !strings.HasPrefix(o.url, "https://") {
		return nil, nil, fmt.Errorf("URL %q: want http:// or https:// with --protocol http", o.url)
	}
	h := http.Header{}
	for _, kv := range o.headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, nil, fmt.Errorf("--header %q: want 'Name: value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	body := []byte(o.body)
	if file, ok := strings.CutPrefix(o.body, "@"); ok {
		var err error
		if body, err = os.ReadFile(file); err != nil {
			return nil, nil, fmt.Errorf("--body: %w", err)
		}
	}
	req, err := http.NewRequest(o.method, o.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("--method %q with %q: %w", o.method, o.url, err)
	}
	return httpTarget([]loadgen.HTTPRequest{{Method: req.Method, URL: o.url, Header: h, Body: body}}, conns, o.cold)
}

// httpTarget sends reqs with the lean HTTP/1.1 client when they are all
// plain http:// to one host, else with net/http.
func httpTarget(reqs []loadgen.HTTPRequest, conns int, cold bool) (loadgen.Target, func(), error) {
	if fast, err := loadgen.NewHTTP1(reqs, conns, cold); err == nil {
		return fast, fast.Close, nil
	}
	client := loadgen.NewHTTPClient(conns, cold)
	return &loadgen.HTTP{Client: client, Requests: reqs}, client.CloseIdleConnections, nil
}

// span reads "N" or "MIN:MAX".
func span(flag, s string) (int, int, error) {
	lo, hi, ranged := strings.Cut(s, ":")
	a, err1 := strconv.Atoi(lo)
	b := a
	var err2 error
	if ranged {
		b, err2 = strconv.Atoi(hi)
	}
	if err1 != nil || err2 != nil || a < 1 || b < a {
		return 0, 0, fmt.Errorf("%s %q: want N or MIN:MAX, at least 1", flag, s)
	}
	return a, b, nil
}

// openAITarget streams completions to an OpenAI-compatible server: the
// model named, or the only one it lists.
func (o benchOptions) openAITarget(ctx context.Context, conns int) (loadgen.Target, string, error) {
	if !strings.HasPrefix(o.url, "http://") && !strings.HasPrefix(o.url, "https://") {
		return nil, "", fmt.Errorf("--protocol openai: URL %q: want http://host:port", o.url)
	}
	t := &loadgen.OpenAI{Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: 0}},
		URL: o.url, Model: o.model, Chat: o.chat, Temperature: o.temperature}
	var err error
	if t.MaxTokensMin, t.MaxTokensMax, err = span("--output-tokens", o.outputTokens); err != nil {
		return nil, "", err
	}
	if o.sharedPrefix < 0 {
		return nil, "", fmt.Errorf("--shared-prefix-tokens %d: want 0 or more", o.sharedPrefix)
	}
	if o.promptsFile != "" {
		data, err := os.ReadFile(o.promptsFile)
		if err != nil {
			return nil, "", fmt.Errorf("--prompts: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				t.Prompts = append(t.Prompts, line)
			}
		}
		if len(t.Prompts) == 0 {
			return nil, "", fmt.Errorf("--prompts %s holds no lines", o.promptsFile)
		}
	} else {
		lo, hi, err := span("--input-tokens", o.inputTokens)
		if err != nil {
			return nil, "", err
		}
		t.Prompts = loadgen.SyntheticPrompts(1000, lo, hi, o.sharedPrefix, o.seed)
	}
	if t.Model == "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.url, "/")+"/v1/models", nil)
		resp, err := t.Client.Do(req)
		if err != nil {
			return nil, "", fmt.Errorf("cannot reach %s: %w", o.url, err)
		}
		defer resp.Body.Close()
		var list struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
			return nil, "", fmt.Errorf("%s/v1/models: %s: name the model with --model", o.url, resp.Status)
		}
		if len(list.Data) != 1 {
			var names []string
			for _, m := range list.Data {
				names = append(names, m.ID)
			}
			return nil, "", fmt.Errorf("the server lists %d models (%s): choose one with --model", len(names), strings.Join(names, ", "))
		}
		t.Model = list.Data[0].ID
	}
	return t, t.Model, nil
}
