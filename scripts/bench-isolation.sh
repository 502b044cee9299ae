#!/usr/bin/env bash
# What process isolation costs, in one run: infer serve on mlp with
# --isolation none (sessions in the server's process) and --isolation
# process (each instance in a model host), over binary HTTP, at 64
# concurrent clients (throughput) and 1 client (p50 latency), closed loop,
# with infer bench in its own process; and the memory of each: the
# server's RSS plus its hosts', with mlp loaded (after the load), and after
# unloading it.
#
# Usage: scripts/bench-isolation.sh [duration]   (default 5s a measurement)
# Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
make -s build onnxruntime >/dev/null
bin=$PWD/bin/infer
repo=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$repo"' EXIT
mkdir -p "$repo/mlp/1"
cp testdata/models/mlp/1/model.onnx "$repo/mlp/1/"
port=18700

# rss PID prints the resident KiB of PID and of its children (its hosts).
rss() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# field JSON KEY... prints a number from infer bench's JSON report.
field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [r:=r[k] for k in sys.argv[2:]]; print(r)' "$@"; }

# ready waits for the server's readiness (a model loaded) or liveness.
wait_for() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port$1" >/dev/null && return 0; sleep 0.05; done; return 1; }

declare -A thr p50 mem
for iso in none process; do
  port=$((port + 1))
  admin=$((port + 100))
  "$bin" serve "$repo" --isolation "$iso" --host 127.0.0.1 --http-port "$port" --grpc-port 0 --metrics-port 0 --admin-port "$admin" --log-level error &
  pid=$!
  wait_for /v2/health/ready
  for c in 64 1; do
    out=$(mktemp)
    "$bin" bench "http://127.0.0.1:$port" --model mlp --protocol http-binary --concurrency "$c" \
      --warmup 1s --duration "$duration" --output json >"$out" 2>/dev/null
    thr[$iso,$c]=$(field "$out" achieved_rate)
    p50[$iso,$c]=$(field "$out" latency p50_ms)
    rm -f "$out"
  done
  loaded=$(rss $pid)
  curl -sf -X POST "http://127.0.0.1:$admin/v2/repository/models/mlp/unload" >/dev/null
  sleep 1
  unloaded=$(rss $pid)
  mem[$iso]="$loaded $unloaded"
  kill $pid; wait $pid 2>/dev/null || true
done

printf '\n%-10s %14s %14s %12s %12s %16s %16s\n' isolation "64 clients r/s" "1 client r/s" "p50@1 ms" "p50@64 ms" "RSS loaded KiB" "RSS unloaded KiB"
for iso in none process; do
  read -r l u <<<"${mem[$iso]}"
  printf '%-10s %14.0f %14.0f %12.3f %12.3f %16d %16d\n' "$iso" "${thr[$iso,64]}" "${thr[$iso,1]}" "${p50[$iso,1]}" "${p50[$iso,64]}" "$l" "$u"
done
python3 - "${thr[none,64]}" "${thr[process,64]}" "${p50[none,1]}" "${p50[process,1]}" <<'EOF'
import sys
n64, p64, n1, p1 = map(float, sys.argv[1:])
print(f"\nprocess / none: throughput at 64 clients {p64 / n64:.3f}x ({100 * (p64 / n64 - 1):+.1f}%), "
      f"p50 at 1 client {p1 / n1:.3f}x (+{1000 * (p1 - n1):.0f} us)")
EOF
