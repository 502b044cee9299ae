package main

import (
	"log/slog"
	"time"

	"github.com/infer-serving/infer/pkg/runner"
)

// announce logs, at info, what a starting server serves: every model
// version with its state (and why, for one that did not load), then the
// addresses it listens on, so that the first lines of a server's log say
// what it is doing.
func announce(log *slog.Logger, repo *runner.Repository, addrs map[string]string) {
	ready, onDemand := 0, 0
	for _, st := range repo.Index() {
		if st.OnDemand {
			onDemand++ // one line for them all, below
			continue
		}
		if st.State != runner.StateReady {
			log.Warn("model version not serving", "model", st.Name, "version", st.Version, "state", st.State, "reason", st.Reason)
			continue
		}
		ready++
		attrs := []any{"model", st.Name, "version", st.Version, "state", st.State, "isolation", st.Isolation}
		if m, err := repo.Model(st.Name, st.Version); err == nil {
			attrs = append(attrs, "device", m.Device().String(), "max_batch_size", *m.Config().MaxBatchSize,
				"load", m.LoadDuration().Round(time.Microsecond), "warmup", m.WarmupDuration().Round(time.Microsecond))
			if m.Generator() != nil {
				attrs = append(attrs, "kind", "text generator")
			}
		}
		log.Info("model version ready", attrs...)
	}
	attrs := []any{"ready_versions", ready, "http", orOff(addrs["HTTP"]), "grpc", orOff(addrs["gRPC"]),
		"metrics", orOff(addrs["metrics"]), "admin", orOff(addrs["admin"]), "nats", orOff(addrs["NATS"])}
	if onDemand > 0 {
		log.Info("model versions load at their first request", "versions", onDemand, "mode", repo.ControlMode())
		attrs = append(attrs, "on_demand_versions", onDemand)
	}
	log.Info("serving", attrs...)
}
