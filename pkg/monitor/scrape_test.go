package monitor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A /metrics page that never ends is refused at the scraper's bound, not
// read until the scrape's timeout (one grew the dashboard by 460 MB in
// two seconds).
func TestScrapeStopsAtItsBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; r.Context().Err() == nil && i < 10_000_000; i++ {
			if _, err := fmt.Fprintf(w, "infer_requests_total{model=\"m%d\",version=\"1\",outcome=\"success\"} 1\n", i); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := Scraper{Server: srv.URL, MaxBytes: 1 << 20}.Scrape(context.Background())
	if err == nil || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("an endless page: %v, want an error naming the bound", err)
	}
}
