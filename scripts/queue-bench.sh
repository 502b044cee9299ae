#!/usr/bin/env bash
# Queue burst: 100,000 mlp requests published at once to the NATS
# JetStream server embedded in infer serve (--queue embedded, its streams
# on disk under a temporary --state-dir), on loopback. With two cores or
# more the server runs on core 0 and the publisher on core 1.
# Prints the burst size, the time to publish and to drain it, the results
# received, and the server's peak VmRSS (sampled every 100 ms) against its
# idle VmRSS; exits 1 when a request is unanswered or answered twice, or
# the peak exceeds idle by more than the bound.
#
# The bound: the queue front end holds at most --queue-max-inflight (64)
# requests of a model at once and fetches only what frees up, so the
# burst waits in the broker's file store, not in the server's heap. What
# may grow is a constant: 64 requests and results in flight, the batcher's
# queue, JetStream's write buffers and block caches (a few MiB per
# stream), the page cache's share the kernel charges to the process
# (none: VmRSS counts no page cache) and Go's heap headroom. 256 MiB is
# that with room to spare, and under the burst's own size (about 300 MiB),
# so a server that held the burst in memory fails it.
#
# Usage: scripts/queue-bench.sh    QUEUE_BURST=100000 QUEUE_BOUND_MIB=256
set -euo pipefail
cd "$(dirname "$0")/.."
n=${QUEUE_BURST:-100000}
bound=${QUEUE_BOUND_MIB:-256}

go build -o bin/infer ./cmd/infer
go build -o bin/queueburst ./scripts/queueburst

. scripts/serving.sh

start_server testdata/models --queue embedded --queue-port QUEUE_PORT --state-dir "$work/state"
nats=nats://127.0.0.1:$((base + 4))

status=0
out=$("${pin_client[@]}" bin/queueburst -nats "$nats" -pid "$server" -n "$n" -bound-mib "$bound") || status=$?
[ -n "$out" ] && echo "$out"
if [ -n "$out" ]; then
  python3 - "$out" <<'PY'
import json, sys
f = json.loads(sys.argv[1])
print(f"burst           {f['burst']:,} requests ({f['burst_mib']:.0f} MiB of bodies)")
print(f"published in    {f['publish_s']:.1f} s (broker-confirmed)")
print(f"drained in      {f['drain_s']:.1f} s ({f['throughput_per_s']:,.0f} results/s)")
print(f"results         {f['results']:,} for {f['answered']:,} requests: {f['unanswered']} unanswered, {f['duplicated']} duplicated, {f['non_200']} not 200")
print(f"VmRSS           idle {f['idle_rss_mib']:.0f} MiB, peak {f['peak_rss_mib']:.0f} MiB (+{f['growth_mib']:.0f} MiB, bound +{f['bound_mib']} MiB, {f['rss_samples']} samples); VmHWM {f['vm_hwm_mib']:.0f} MiB")
PY
fi
if [ "$status" -ne 0 ]; then
  tail -20 "$work/serve.log" >&2
  exit 1
fi
