package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Capture records a baseline from a running server: it waits for d, then
// reads the statistics the version's quality monitor gathered since it
// began (GET /v2/models/{model}[/versions/{v}]/quality?since=...). The
// span is as fine as the monitor's windows: the window open at the start
// counts whole. version 0 is the version the server answers unversioned
// requests with. The server must monitor the version (monitor.sample).
func Capture(ctx context.Context, client *http.Client, base, model string, version int64, d time.Duration) (Summary, error) {
	if client == nil {
		client = http.DefaultClient
	}
	path := "/v2/models/" + url.PathEscape(model)
	if version > 0 {
		path += fmt.Sprintf("/versions/%d", version)
	}
	// Check first that the version is monitored, so a mistake costs no wait.
	if _, err := get(ctx, client, strings.TrimSuffix(base, "/")+path+"/quality"); err != nil {
		return Summary{}, err
	}
	since := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return Summary{}, ctx.Err()
	}
	data, err := get(ctx, client, strings.TrimSuffix(base, "/")+path+"/quality?since="+url.QueryEscape(since.UTC().Format(time.RFC3339Nano)))
	if err != nil {
		return Summary{}, err
	}
	return ParseSummary(data)
}

func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server (is infer serve running?): %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, fmt.Errorf("GET %s: %d: %s", u, resp.StatusCode, msg)
	}
	return data, nil
}
