package monitor

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/infer-serving/infer/pkg/deploy"
	"github.com/infer-serving/infer/pkg/protocol"
)

// Server is one server to watch: its HTTP API, where its metrics are
// served (Triton's layout puts them on a port of their own) and its admin
// API, where rollouts are read.
type Server struct {
	API     string // such as http://localhost:8000
	Metrics string // such as http://localhost:8002; empty: the API's
	Admin   string // such as http://localhost:8003; empty: the API's
}

// Options shape a Monitor.
type Options struct {
	// Servers are the servers to watch.
	Servers []Server
	// Window is the span percentiles and rates are computed over.
	Window time.Duration
	// History is how far back the sparklines reach.
	History time.Duration
	// USDPerHour prices each whole server; see Between.
	USDPerHour float64
	// Token is the admin bearer token, for reading rollouts; loopback
	// servers need none.
	Token string
	// Timeout bounds each read of a server.
	Timeout time.Duration
	// HTTP is the client; nil for one of the Monitor's own.
	HTTP *http.Client
}

// Defaults.
const (
	DefaultWindow  = 10 * time.Second
	DefaultHistory = 5 * time.Minute
	DefaultTimeout = 2 * time.Second
)

// Point is one step of a model version's history: its request rate and
// p99 (seconds, NaN without requests) between two samples.
type Point struct {
	At        time.Time
	Rate, P99 float64
}

// Row is one model version in a Frame.
type Row struct {
	Figures
	// Trend holds the steps of the history, oldest first.
	Trend []Point
	// Index is the version's entry in its server's repository index
	// (POST /v2/repository/index): its state and reason, and from infer
	// its loaded memory and last use. Nil where the server has no index.
	Index *protocol.IndexEntry
}

// Rollout is a model's rollout as a server reported it.
type Rollout struct {
	Server string
	deploy.State
}

// Frame is everything the monitor knows after one poll.
type Frame struct {
	At     time.Time
	Window time.Duration // the longest span the rows' figures cover: up to Options.Window
	Rows   []Row
	// Rollouts holds each model's current or last rollout, by model name.
	Rollouts map[string]Rollout
	// Errors holds the servers that could not be read this time.
	Errors map[string]error
	// RolloutErrors holds the servers whose metrics were read but whose
	// rollouts could not be (their admin API unreachable, or refusing the
	// token), so that a dashboard says why it shows none.
	RolloutErrors map[string]error
}

// Monitor polls servers and keeps their recent samples.
type Monitor struct {
	o       Options
	client  *http.Client
	series  map[string]*series
	history int // samples kept
}

type series struct {
	samples []Sample
	trend   map[Key][]Point
}

// New returns a monitor of o.Servers.
func New(o Options) (*Monitor, error) {
	if len(o.Servers) == 0 {
		return nil, errors.New("monitor: no servers to watch")
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	client := o.HTTP
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}}
	}
	m := &Monitor{o: o, client: client, series: map[string]*series{}}
	for _, s := range o.Servers {
		m.series[s.API] = &series{trend: map[Key][]Point{}}
	}
	return m, nil
}

// Poll reads every server once, concurrently, and returns the frame.
// Poll is not safe for concurrent use.
func (m *Monitor) Poll(ctx context.Context) Frame {
	ctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	type read struct {
		server   string
		sample   Sample
		rollouts map[string]deploy.State
		index    []protocol.IndexEntry
		err      error
		unread   error // why the rollouts could not be read
	}
	reads := make([]read, len(m.o.Servers))
	var wg sync.WaitGroup
	for i, server := range m.o.Servers {
		wg.Go(func() {
			r := read{server: server.API}
			r.sample, r.err = Scraper{Server: server.API, Metrics: server.Metrics, HTTP: m.client}.Scrape(ctx)
			if r.err == nil {
				admin := server.Admin
				if admin == "" {
					admin = server.API
				}
				r.rollouts, r.unread = m.rollouts(ctx, admin, r.sample)
				// A server without the repository extension has no
				// index: its rows go without one.
				r.index, _ = (&deploy.Client{Base: server.API, Token: m.o.Token, HTTP: m.client}).Index(ctx)
			}
			reads[i] = r
		})
	}
	wg.Wait()

	f := Frame{At: time.Now(), Rollouts: map[string]Rollout{}, Errors: map[string]error{}, RolloutErrors: map[string]error{}}
	for _, r := range reads {
		if r.err != nil {
			f.Errors[r.server] = r.err
			continue
		}
		if r.unread != nil {
			f.RolloutErrors[r.server] = r.unread
		}
		for model, st := range r.rollouts {
			f.Rollouts[model] = Rollout{Server: r.server, State: st}
		}
		for _, row := range withIndex(m.add(r.sample), r.server, r.index) {
			f.Window = max(f.Window, row.Window)
			f.Rows = append(f.Rows, row)
		}
		if f.At.Before(r.sample.At) {
			f.At = r.sample.At
		}
	}
	return f
}

// Add records a sample taken elsewhere (a test's, or a replay's) and
// returns its rows, as Poll does.
func (m *Monitor) Add(s Sample) []Row {
	if m.series[s.Server] == nil {
		m.series[s.Server] = &series{trend: map[Key][]Point{}}
	}
	return m.add(s)
}

// add appends s to its server's series and returns the rows of the window
// ending at s.
func (m *Monitor) add(s Sample) []Row {
	ser := m.series[s.Server]
	if n := len(ser.samples); n > 0 {
		for _, f := range Between(ser.samples[n-1], s, 0) {
			ser.trend[f.Key] = append(ser.trend[f.Key], Point{At: s.At, Rate: f.Rate, P99: f.P99})
		}
	}
	ser.samples = append(ser.samples, s)
	// Keep what the history and the window reach back to, and one more.
	horizon := s.At.Add(-max(m.o.History, m.o.Window))
	drop := 0
	for drop < len(ser.samples)-2 && ser.samples[drop+1].At.Before(horizon) {
		drop++
	}
	ser.samples = ser.samples[drop:]
	for k, points := range ser.trend {
		cut := 0
		for cut < len(points) && points[cut].At.Before(horizon) {
			cut++
		}
		if _, live := s.Versions[k]; !live && cut == len(points) {
			delete(ser.trend, k)
			continue
		}
		ser.trend[k] = points[cut:]
	}

	before := ser.samples[0]
	for _, old := range ser.samples[:len(ser.samples)-1] {
		if old.At.After(s.At.Add(-m.o.Window)) {
			break
		}
		before = old
	}
	var rows []Row
	// One sample has no window yet (before is s itself): gauges only.
	for _, f := range Between(before, s, m.o.USDPerHour) {
		if len(ser.samples) < 2 {
			f.Rate = math.NaN()
		}
		rows = append(rows, Row{Figures: f, Trend: append([]Point(nil), ser.trend[f.Key]...)})
	}
	return rows
}

// rollouts reads the rollout of every model s serves, skipping models
// that never had one and servers that refuse the admin API.
func (m *Monitor) rollouts(ctx context.Context, server string, s Sample) (map[string]deploy.State, error) {
	c := &deploy.Client{Base: server, Token: m.o.Token, HTTP: m.client}
	out := map[string]deploy.State{}
	seen := map[string]bool{}
	for _, k := range s.Keys() {
		if seen[k.Model] {
			continue
		}
		seen[k.Model] = true
		st, err := c.Rollout(ctx, k.Model)
		if errors.Is(err, deploy.ErrNotFound) {
			continue // the model has none
		}
		if err != nil {
			return out, err // the next model's would fail the same way
		}
		out[k.Model] = st
	}
	return out, nil
}
