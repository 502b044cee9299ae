#!/usr/bin/env bash
# Soak test: infer serve under a steady load for a long stretch, watching
# for slow leaks.
#   1. Serves mlp, text-encoder and the tiny-gpt text generator on
#      loopback, and starts a canary of a second mlp version at 5% that
#      stays active throughout.
#   2. Streams completions from tiny-gpt, open loop at SOAK_GEN_QPS
#      (default 10) with 8 to 160 output tokens, from before the capacity
#      measurement to the end of the soak.
#   3. Measures the capacity of mlp and text-encoder together (closed
#      loop, 15 s), then sends 80% of it to each, open loop, for
#      SOAK_SECONDS (default 300).
#   4. Samples the server's resident memory and goroutines every 10 s
#      from its /metrics.
# Passes when resident memory grows less than 10% after the first minute,
# the goroutines come back to where they were before the load (no leak),
# and every request was answered, well formed (no error of any kind).
#
# Usage: scripts/soak.sh            SOAK_SECONDS=60 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh >/dev/null
seconds=${SOAK_SECONDS:-300}
gen_qps=${SOAK_GEN_QPS:-10}
go build -o bin/infer ./cmd/infer

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

repo=$work/models
mkdir -p "$repo"
cp -r testdata/models/mlp testdata/models/text-encoder testdata/models/tiny-gpt "$repo/"
base=$((20000 + RANDOM % 20000))
http=$base metrics=$((base + 2))
bin/infer serve "$repo" --host 127.0.0.1 --http-port "$http" --grpc-port 0 --metrics-port "$metrics" \
  --state-dir "$work/state" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null && break
  sleep 0.1
done
url=http://127.0.0.1:$http

# A second mlp version, rolled out at 5% for longer than the soak lasts.
cp -r "$repo/mlp/1" "$repo/mlp/2"
bin/infer rollout --server "$url" --model mlp --steps 5,100 --interval 2h --detach >&2

metric() { curl -s "http://127.0.0.1:$metrics/metrics" | awk -v m="$1" '$1 == m { printf "%.0f", $2 }'; }
rate() { sed -n 's/^ *"achieved_rate": \([0-9.]*\).*/\1/p' "$1" | head -1; }
texts=$work/texts.txt
awk 'NF && n++ < 200' README.md >"$texts"

bin/infer bench "$url" --protocol openai --model tiny-gpt --qps "$gen_qps" --input-tokens 8:64 --output-tokens 8:160 \
  --duration "$((seconds + 20))s" --output json >"$work/soak-gen.json" 2>/dev/null &
b3=$!
echo "generating from tiny-gpt at $gen_qps/s throughout; measuring capacity: mlp and text-encoder at once, closed loop, 15 s" >&2
bin/infer bench "$url" --model mlp --concurrency 16 --duration 15s --output json >"$work/cap-mlp.json" 2>/dev/null &
c1=$!
bin/infer bench "$url" --model text-encoder --text-file "$texts" --concurrency 4 --duration 15s --output json >"$work/cap-text.json" 2>/dev/null
wait "$c1"
mlp_qps=$(awk -v r="$(rate "$work/cap-mlp.json")" 'BEGIN { printf "%.0f", 0.8 * r }')
text_qps=$(awk -v r="$(rate "$work/cap-text.json")" 'BEGIN { printf "%.0f", 0.8 * r }')
sleep 2
idle_goroutines=$(metric go_goroutines)
echo "capacity: mlp $(rate "$work/cap-mlp.json")/s, text-encoder $(rate "$work/cap-text.json")/s; soaking at 80%: $mlp_qps/s and $text_qps/s for ${seconds}s" >&2

bin/infer bench "$url" --model mlp --qps "$mlp_qps" --concurrency 16 --duration "${seconds}s" --output json >"$work/soak-mlp.json" 2>/dev/null &
b1=$!
bin/infer bench "$url" --model text-encoder --text-file "$texts" --qps "$text_qps" --concurrency 4 --duration "${seconds}s" --output json >"$work/soak-text.json" 2>/dev/null &
b2=$!
samples=$work/samples.tsv
printf "second\trss_mib\tgoroutines\n" >"$samples"
start=$(date +%s)
while kill -0 "$b1" 2>/dev/null || kill -0 "$b2" 2>/dev/null; do
  now=$(($(date +%s) - start))
  printf "%d\t%.1f\t%d\n" "$now" "$(awk -v b="$(metric process_resident_memory_bytes)" 'BEGIN { print b / 1048576 }')" "$(metric go_goroutines)" >>"$samples"
  sleep 10
done
wait "$b1" "$b2" "$b3" || true
sleep 2
after_goroutines=$(metric go_goroutines)

cat "$samples"
fail=0
read -r first peak < <(awk -F'\t' 'NR > 1 && $1 >= 60 { if (!f) f = $2; if ($2 > p) p = $2 } END { print f, p }' "$samples")
growth=$(awk -v f="$first" -v p="$peak" 'BEGIN { if (f > 0) printf "%.1f", 100 * (p - f) / f; else print "nan" }')
echo "resident memory: ${first} MiB at the first minute, peak ${peak} MiB after it: +${growth}%"
awk -v g="$growth" 'BEGIN { exit !(g == "nan" || g >= 10) }' && { echo "FAIL: memory grew 10% or more"; fail=1; }
echo "goroutines: $idle_goroutines idle before the load, $after_goroutines after it"
[ "$after_goroutines" -gt $((idle_goroutines + 10)) ] && { echo "FAIL: goroutines left behind"; fail=1; }
for f in soak-mlp soak-text soak-gen; do
  requests=$(sed -n 's/^ *"requests": \([0-9]*\).*/\1/p' "$work/$f.json" | head -1)
  ok=$(sed -n 's/^ *"ok": \([0-9]*\).*/\1/p' "$work/$f.json" | head -1)
  p99=$(sed -n '/"latency"/,/}/s/^ *"p99_ms": \([0-9.]*\).*/\1/p' "$work/$f.json" | head -1)
  echo "$f: $ok of $requests answered, p99 ${p99} ms"
  if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ "$ok" != "$requests" ]; then
    echo "FAIL: $f lost or failed requests:"; grep -A5 '"errors"' "$work/$f.json" | head -6
    fail=1
  fi
done
bin/infer rollout status --server "$url" --model mlp | head -3
[ "$fail" -eq 0 ] && echo PASS
exit "$fail"
