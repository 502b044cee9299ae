package queueapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/queue"
)

// metrics are the queue front end's: counters of what became of each
// request, and the broker's backlog read at each scrape.
type metrics struct {
	broker string
	mu     sync.Mutex
	models map[string]*modelMetrics
}

type modelMetrics struct {
	consumer                                          queue.Consumer
	answered, retried, redeliveries, dead, duplicates atomic.Int64
}

var (
	messagesDesc = prometheus.NewDesc("infer_queue_messages_total",
		"Requests taken from the broker by model and what became of them: answered (a result published, errors included), retried (handed back after a server failure), dead_letter (moved to the dead-letter stream), duplicate (already answered within the deduplication window).",
		[]string{"broker", "model", "outcome"}, nil)
	redeliveriesDesc = prometheus.NewDesc("infer_queue_redeliveries_total",
		"Requests delivered again: after a retry, or after their holder stopped without acknowledging them.", []string{"broker", "model"}, nil)
	lagDesc = prometheus.NewDesc("infer_queue_consumer_lag",
		"Requests stored in the broker and not yet delivered to a server, by model: the autoscaling signal.", []string{"broker", "model"}, nil)
	oldestDesc = prometheus.NewDesc("infer_queue_oldest_unacknowledged_age_seconds",
		"Age of the oldest request not yet acknowledged (delivered or not), by model; 0 when none waits.", []string{"broker", "model"}, nil)
)

// scrapeTimeout bounds the broker round trips of one scrape.
const scrapeTimeout = 2 * time.Second

func newMetrics(broker string) *metrics {
	return &metrics{broker: broker, models: map[string]*modelMetrics{}}
}

// watch starts reporting model's backlog from c.
func (m *metrics) watch(model string, c queue.Consumer) {
	mm := m.of(model)
	m.mu.Lock()
	mm.consumer = c
	m.mu.Unlock()
}

// of returns model's counters, made on first use.
func (m *metrics) of(model string) *modelMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	mm := m.models[model]
	if mm == nil {
		mm = &modelMetrics{}
		m.models[model] = mm
	}
	return mm
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- messagesDesc
	ch <- redeliveriesDesc
	ch <- lagDesc
	ch <- oldestDesc
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	type watched struct {
		mm       *modelMetrics
		consumer queue.Consumer
	}
	models := make(map[string]watched, len(m.models))
	for k, v := range m.models {
		models[k] = watched{v, v.consumer}
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for name, w := range models {
		mm := w.mm
		for outcome, c := range map[string]*atomic.Int64{"answered": &mm.answered, "retried": &mm.retried, "dead_letter": &mm.dead, "duplicate": &mm.duplicates} {
			ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(c.Load()), m.broker, name, outcome)
		}
		ch <- prometheus.MustNewConstMetric(redeliveriesDesc, prometheus.CounterValue, float64(mm.redeliveries.Load()), m.broker, name)
		if w.consumer == nil {
			continue
		}
		bl, err := w.consumer.Backlog(ctx)
		if err != nil {
			continue // the broker is away: no figure rather than a wrong one
		}
		age := 0.0
		if !bl.Oldest.IsZero() {
			age = max(time.Since(bl.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(bl.Lag), m.broker, name)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, m.broker, name)
	}
}
