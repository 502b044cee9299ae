package core

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infer-serving/infer/pkg/runner"
)

// RouteHeader names, on the answer of a router model, the route it took
// (the rule's name, or "default").
const RouteHeader = "Inference-Route"

// TrailerRoute is RouteHeader in gRPC response parameters.
const TrailerRoute = "inference-route"

// compositeCollector gathers the metrics of the pipelines and routers
// loaded now (steps' durations and failures, routes taken): each ready
// composite version that is a prometheus.Collector is collected, so that
// a version's series go with it when it is unloaded. It is unchecked:
// the series depend on what is loaded.
type compositeCollector struct{ repo *runner.Repository }

func (compositeCollector) Describe(chan<- *prometheus.Desc) {}

func (c compositeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.repo.Index() {
		if st.State != runner.StateReady {
			continue
		}
		m, err := c.repo.Model(st.Name, st.Version)
		if err != nil {
			continue
		}
		if col, ok := m.Composite().(prometheus.Collector); ok {
			col.Collect(ch)
		}
	}
}
