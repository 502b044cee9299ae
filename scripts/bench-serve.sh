#!/usr/bin/env bash
# Measures infer serve on mlp in one run, against the runtime alone:
#   - ONNX Runtime in process, batch 1..256 (BenchmarkRawMLP), its best the ceiling;
#   - infer serve over binary HTTP, JSON HTTP and gRPC at 1, 16 and 64
#     concurrent clients, dynamic batching off and on (BenchmarkServeMLP);
#   - the server's own overhead (total - infer, from Server-Timing) at p50.
# The load generator is the benchmark's own goroutines (Go net/http and
# grpc-go clients, closed loop, keep-alive), in the same process as the
# server: both share this machine's cores.
#
# Usage: scripts/bench-serve.sh [benchtime]   (default 2s)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh >/dev/null
benchtime=${1:-2s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "cores: $(nproc); $(go version | cut -d' ' -f3-)" >&2
go test ./pkg/runner -run '^$' -bench 'RawMLP' -benchtime "$benchtime" | tee -a "$out" >&2
go test ./pkg/server -run '^$' -bench 'ServeMLP' -benchtime "$benchtime" | tee -a "$out" >&2
awk '
  function metric(name,   i) { for (i = 1; i <= NF; i++) if ($(i) == name) return $(i-1); return "" }
  /^BenchmarkRawMLP/ { r = metric("rows/s"); if (r > raw) { raw = r; rawname = $1 } }
  /^BenchmarkServeMLP/ {
    split($1, p, "/"); key = p[3] "/" p[4]; sub(/-[0-9]+$/, "", key)
    on = (p[2] == "batching=true")
    rows[key, on] = metric("rows/s"); batch[key, on] = metric("mean-batch")
    ovh[key, on] = metric("overhead-p50-us")
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
  }
  END {
    printf "\nraw ONNX Runtime, best: %.0f rows/s (%s)\n\n", raw, rawname
    printf "%-18s %12s %12s %8s %10s %12s %16s\n", "protocol/clients", "off rows/s", "on rows/s", "on/off", "on batch", "on of raw", "overhead p50 us"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "%-18s %12.0f %12.0f %7.2fx %10.1f %11.1f%% %16s\n", k, rows[k,0], rows[k,1], rows[k,1] / rows[k,0], batch[k,1], 100 * rows[k,1] / raw, ovh[k,0] "/" ovh[k,1]
    }
  }' "$out"
