#!/usr/bin/env bash
# Puts infer bench side by side with vegeta and wrk, in one run, against the
# same trivial loopback HTTP server (scripts/loopback-server):
#   - closed loop: requests per second at 64 connections, for 3 tools;
#   - open loop: the highest rate infer bench and vegeta each sustain within
#     1% of target with p99 under 10 ms (wrk has no open loop). infer bench
#     finds it with --find-max; vegeta is searched here the same way
#     (doubling from START, then bisecting to within 5%).
# Everything runs on this machine: the tools and the server share its cores.
#
# Usage: scripts/bench-loadgen.sh   (DURATION=3s START=4000 to change)
# Needs wrk (Debian package wrk) and installs vegeta v12.13.0 into bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-3s}
START=${START:-4000}
ADDR=127.0.0.1:18900
URL=http://$ADDR/

if ! command -v wrk >/dev/null; then
  echo "bench-loadgen: wrk is missing: apt-get install wrk" >&2
  exit 1
fi
mkdir -p bin
[ -x bin/vegeta ] || GOBIN=$PWD/bin go install github.com/tsenart/vegeta/v12@v12.13.0
go build -o bin/infer ./cmd/infer
go build -o bin/loopback-server ./scripts/loopback-server
scripts/setup-onnxruntime.sh >/dev/null

bin/loopback-server -addr "$ADDR" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 1

num() { sed -n "s/.*\"$1\": *\([0-9.e+]*\).*/\1/p" | head -1; }

echo "cores: $(nproc); closed loop, 64 connections, $DURATION each" >&2
wrk_closed=$(wrk -t2 -c64 -d"$DURATION" "$URL" | awk '/Requests\/sec/ {print $2}')
infer_closed=$(bin/infer bench "$URL" --protocol http --concurrency 64 --duration "$DURATION" --output json 2>/dev/null | num achieved_rate)
vegeta_closed=$(echo "GET $URL" | bin/vegeta attack -rate=0 -max-workers=64 -duration="$DURATION" | bin/vegeta report -type=json | tr ',' '\n' | num throughput)

echo "open loop: highest rate within 1% of target with p99 < 10ms, $DURATION a probe" >&2
infer_open=$(bin/infer bench "$URL" --protocol http --find-max --slo 'p99<10ms' --qps "$START" --duration "$DURATION" --output json 2>/dev/null | num max_sustained_rate)

vegeta_ok() { # rate -> success when it held
  local out p99 thr
  out=$(echo "GET $URL" | bin/vegeta attack -rate="$1" -duration="$DURATION" | bin/vegeta report -type=json | tr ',{}' '\n\n\n')
  p99=$(echo "$out" | num 99th)
  thr=$(echo "$out" | num throughput)
  awk -v p="$p99" -v t="$thr" -v r="$1" 'BEGIN { exit !(p < 10e6 && t >= 0.99 * r) }'
}
lo=0; hi=0; rate=$START
while vegeta_ok "$rate"; do lo=$rate; rate=$((rate * 2)); done
hi=$rate
while [ $((hi - lo)) -gt $((hi / 20)) ]; do
  mid=$(((lo + hi) / 2))
  if vegeta_ok "$mid"; then lo=$mid; else hi=$mid; fi
done
vegeta_open=$lo

printf '\n%-28s %12s %12s %12s\n' "" "infer bench" "vegeta" "wrk"
printf '%-28s %12.0f %12.0f %12.0f\n' "closed loop, requests/s" "$infer_closed" "$vegeta_closed" "$wrk_closed"
printf '%-28s %12.0f %12.0f %12s\n' "open loop sustained, /s" "$infer_open" "$vegeta_open" "-"
awk -v io="$infer_open" -v vo="$vegeta_open" -v ic="$infer_closed" -v wc="$wrk_closed" 'BEGIN {
  printf "\ninfer bench / vegeta, open loop:  %.2fx (target 1.5x)\n", io / vo
  printf "infer bench / wrk, closed loop:   %.0f%% (target 70%%)\n", 100 * ic / wc
}'
