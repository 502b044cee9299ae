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
# Usage: scripts/bench-batching.sh [benchtime]   (default 2s)
# Environment:
#   INFER_BENCH_DEVICE   serve mlp (and run it raw) on this device, such as
#                        cuda:0 (default cpu)
#   ONNXRUNTIME_LIB      the runtime library (default: the project's, set up)
#   RUNNER_TEST, SERVER_TEST
#                        prebuilt test binaries of pkg/runner and pkg/server
#                        (go test -c), for a machine without Go
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${ONNXRUNTIME_LIB:-}" ] || scripts/setup-onnxruntime.sh >/dev/null
benchtime=${1:-2s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# bench PKG BINARY PATTERN runs PKG's benchmarks matching PATTERN.
bench() {
  if [ -n "$2" ]; then
    local bin=$2
    [[ $bin = /* ]] || bin=$PWD/$bin
    (cd "pkg/$1" && "$bin" -test.run '^$' -test.bench "$3" -test.benchtime "$benchtime")
  else
    go test "./pkg/$1" -run '^$' -bench "$3" -benchtime "$benchtime"
  fi
}
echo "cores: $(nproc); device: ${INFER_BENCH_DEVICE:-cpu}; $(go version 2>/dev/null | cut -d' ' -f3- || echo 'prebuilt test binaries')" >&2
bench runner "${RUNNER_TEST:-}" 'RawMLP' | tee -a "$out" >&2
bench server "${SERVER_TEST:-}" 'ServeMLP' | tee -a "$out" >&2
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
