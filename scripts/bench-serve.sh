#!/usr/bin/env bash
# Measures infer serve on mlp (one row of 784 FP32 per request) in one run,
# under external load generators, beside what it is judged against:
#   - JSON: wrk with the shared wrk-json.lua against infer serve and against
#     the naive Go server (net/http + encoding/json + onnxruntime_go, no
#     batching) of the shared baselines;
#   - binary tensor extension: wrk with wrk-binary.lua against infer serve
#     and against the trivial loopback server (scripts/loopback-server), the
#     transport's ceiling under the same wrk settings;
#   - gRPC: this build's infer bench --protocol grpc against this build and
#     against BASE, the build before the request-path work, built from git;
#   - the server's own p50 overhead at one client (Server-Timing total minus
#     infer): per response with wrk and scripts/bench/overhead.lua over
#     HTTP; over gRPC, the sum of infer bench's server phase p50s other than
#     infer (admission, queue, cache, preprocess, postprocess).
# The servers, with their model hosts, are pinned to SERVER_CPU and the
# generator to CLIENT_CPU, both at nice -10 (when allowed), so that neither
# takes the other's core. They all run at once, and each round measures
# the six in a row (infer serve then its baseline, for each protocol); the
# ratios printed are the medians of the rounds'. A figure of 0 means wrk
# saw an answer that was not 2xx, printed above it.
#
# Usage: scripts/bench-serve.sh
# Environment:
#   DURATION     each measurement (default 5s); CONNS connections (default 64)
#   ROUNDS       rounds of the six measurements (default 3)
#   BASE         the commit to compare gRPC against (default: the commit the
#                request-path work branched from, found by its subject, which
#                outlives a rewritten history where its hash may not)
#   BASELINES    the shared baselines folder (default ../shared/baselines)
#   SERVER_CPU, CLIENT_CPU   the cores to pin to (default 0 and 1)
#   PORT         first of the six loopback ports used (default 18600)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
BASE_SUBJECT='docs: the command reference names --max-connections and monitor'
BASE=${BASE:-$(git log --format=%h --fixed-strings --grep="$BASE_SUBJECT" -1 2>/dev/null || true)}
BASELINES=${BASELINES:-../shared/baselines}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18600}
ROUNDS=${ROUNDS:-3}
INFER_PATH=/v2/models/mlp/infer

git rev-parse --verify --quiet "${BASE:-none}^{commit}" >/dev/null ||
  { echo "bench-serve: no base commit to compare gRPC against (\"$BASE_SUBJECT\" is not in this clone's history); set BASE" >&2; exit 1; }
for tool in wrk taskset perl curl jq; do
  command -v $tool >/dev/null || { echo "bench-serve: $tool is missing (wrk: apt-get install wrk)" >&2; exit 1; }
done
[ -f "$BASELINES/wrk-json.lua" ] || { echo "bench-serve: no $BASELINES/wrk-json.lua; set BASELINES" >&2; exit 1; }
BASELINES=$(cd "$BASELINES" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prio=-10
nice -n -10 true 2>/dev/null || prio=0 # not allowed to raise priority: run as is
on_server() { exec taskset -c "$SERVER_CPU" nice -n "$prio" "$@"; }
on_client() { taskset -c "$CLIENT_CPU" nice -n "$prio" "$@"; }

lib=$(scripts/setup-onnxruntime.sh)
echo "building this tree, $BASE, the naive Go server and the loopback server" >&2
build() { nice -n 19 go build "$@"; } # builds yield to whatever else runs here
build -o "$work/infer" ./cmd/infer
mkdir "$work/base"
git archive "$BASE" | tar -x -C "$work/base"
(cd "$work/base" && build -o "$work/infer-base" ./cmd/infer)
(cd "$BASELINES/go-naive" && build -o "$work/naive" .)
build -o "$work/loopback" ./scripts/loopback-server

# One repository holding mlp alone, and one request: 784 pixels in [0, 1),
# six decimals in JSON, the same float32 values in binary (outputs binary too).
mkdir -p "$work/models/mlp/1"
cp testdata/models/mlp/config.yaml "$work/models/mlp/"
echo "intra_op_threads: 1 # the server has one core, as the naive server's sessions have one thread" >>"$work/models/mlp/config.yaml"
cp testdata/models/mlp/1/model.onnx "$work/models/mlp/1/"
perl -e '
  srand(1); my @x = map { sprintf("%.6f", rand()) } 1..784;
  open(my $j, ">", "$ARGV[0]/req.json") or die;
  print $j q({"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[), join(",", @x), "]}]}";
  my $h = q({"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":3136}}],"parameters":{"binary_data_output":true}});
  open(my $b, ">", "$ARGV[0]/req.bin") or die; binmode $b;
  print $b $h, pack("f<*", @x);
  open(my $l, ">", "$ARGV[0]/header_len") or die; print $l length($h);
' "$work"
HEADER_LEN=$(cat "$work/header_len")

ready() { # url: wait up to 60 s for 200
  curl -s -o /dev/null --retry 120 --retry-connrefused --retry-delay 0 --retry-max-time 60 -f "$1" ||
    { echo "bench-serve: $1 never answered" >&2; exit 1; }
}
# Every server runs at once, each on its own loopback port and all on
# SERVER_CPU; an idle one takes no CPU. The generators then alternate
# between them, ROUNDS times, so that each ratio is of two figures taken
# seconds apart: on a shared machine the rate a core gives drifts by a
# third over minutes, which a ratio of figures taken minutes apart reads
# as the server's.
servers=()
stop() { for p in "${servers[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; servers=(); }
start() { # name port command...: run it on SERVER_CPU, wait for its readiness
  local name=$1 port=$2
  shift 2
  (on_server "$@") &
  servers+=($!)
  if [ "$name" = loopback ]; then ready "http://127.0.0.1:$port/"; else ready "http://127.0.0.1:$port/v2/health/ready"; fi
}
infer_serve() { # binary port: infer serve (this build or base) on mlp, HTTP on port, gRPC on port+1
  start infer "$2" "$1" serve "$work/models" --onnxruntime-lib "$lib" --host 127.0.0.1 --http-port "$2" \
    --grpc-port "$(($2 + 1))" --metrics-port 0 --admin-port 0 --log-level warn
}
INFER=$PORT BASE_PORT=$((PORT + 2)) NAIVE=$((PORT + 4)) LOOPBACK=$((PORT + 5))
infer_serve "$work/infer" "$INFER"
infer_serve "$work/infer-base" "$BASE_PORT"
start naive "$NAIVE" "$work/naive" -model "$work/models/mlp/1/model.onnx" -name mlp -port "$NAIVE" -lib "$lib"
start loopback "$LOOPBACK" "$work/loopback" -addr "127.0.0.1:$LOOPBACK"
trap 'stop; rm -rf "$work"' EXIT

# wrk_rate script body port [header length]: requests/s, or 0 and the
# failure when any answer was not 2xx.
wrk_rate() {
  local out
  out=$(on_client env -u HEADER_LEN BODY="$2" ${4:+HEADER_LEN=$4} wrk -t1 -c"$CONNS" -d"$DURATION" -s "$1" "http://127.0.0.1:$3$INFER_PATH")
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "bench-serve: wrk saw errors:" >&2; echo "$out" >&2; echo 0; return
  fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
overhead() { # body [header length]: p50 in µs at one connection
  env -u HEADER_LEN BODY="$1" ${2:+HEADER_LEN=$2} taskset -c "$CLIENT_CPU" nice -n "$prio" \
    wrk -t1 -c1 -d"$DURATION" -s scripts/bench/overhead.lua "http://127.0.0.1:$INFER$INFER_PATH" | awk '/^overhead p50 us:/ {print $4}'
}
grpc_bench() { # port concurrency: infer bench's report, as JSON
  on_client "$work/infer" bench "127.0.0.1:$(($1 + 1))" --protocol grpc -m mlp -c "$2" --warmup 1s -d "$DURATION" -o json 2>/dev/null
}
grpc_rate() { grpc_bench "$1" "$CONNS" | jq '.achieved_rate // .runs[0].achieved_rate'; }
json() { wrk_rate "$BASELINES/wrk-json.lua" "$work/req.json" "$1"; }
binary() { wrk_rate "$BASELINES/wrk-binary.lua" "$work/req.bin" "$1" "$HEADER_LEN"; }

echo "cores: $(nproc); servers on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU, nice $prio; $CONNS connections, $DURATION each, $ROUNDS rounds" >&2
rows=()
for round in $(seq "$ROUNDS"); do
  j=$(json "$INFER") n=$(json "$NAIVE")
  b=$(binary "$INFER") l=$(binary "$LOOPBACK")
  g=$(grpc_rate "$INFER") g0=$(grpc_rate "$BASE_PORT")
  rows+=("$round $j $n $b $l $g $g0")
  echo "round $round of $ROUNDS done" >&2
done
ovh_json=$(overhead "$work/req.json")
ovh_binary=$(overhead "$work/req.bin" "$HEADER_LEN")
ovh_grpc=$(grpc_bench "$INFER" 1 | jq '[(.phases // .runs[0].phases)[] | select(.phase == "admission" or .phase == "queue" or .phase == "cache" or .phase == "preprocess" or .phase == "postprocess") | .p50_ms] | add * 1000')
stop

printf '\nrequests/s, %s connections, each round the six in a row\n' "$CONNS"
printf '%-6s %9s %9s %7s %9s %9s %7s %9s %9s %7s\n' round "JSON" "naive Go" ratio binary loopback ratio gRPC "$BASE" ratio
printf '%s\n' "${rows[@]}" | awk '{
  printf "%-6s %9.0f %9.0f %6.2fx %9.0f %9.0f %6.1f%% %9.0f %9.0f %6.2fx\n", $1, $2, $3, $2 / $3, $4, $5, 100 * $4 / $5, $6, $7, $6 / $7
}'
printf '\n%-44s %12s\n' "server overhead p50 at one client, µs" ""
printf '%-44s %12.1f\n' "binary" "$ovh_binary" "JSON" "$ovh_json" "gRPC" "$ovh_grpc"
# The medians of the rounds' ratios (the middle one, or the mean of the
# two middle ones).
printf '%s\n' "${rows[@]}" | awk -v ob="$ovh_binary" -v oj="$ovh_json" -v og="$ovh_grpc" '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { n++; j[n] = $2 / $3; b[n] = $4 / $5; g[n] = $6 / $7 }
  END {
    printf "\nmedians of %d rounds\n", n
    printf "JSON / naive Go:            %5.2fx  (target 3x)\n", median(j, n)
    printf "binary / loopback:          %5.1f%%  (target 50%%)\n", 100 * median(b, n)
    printf "gRPC / the build before:    %5.2fx  (target 1.5x)\n", median(g, n)
    printf "overhead p50 binary, JSON, gRPC: %.1f, %.1f, %.1f us  (targets 20, 40, 15)\n", ob, oj, og
  }'
