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
# Each server runs alone, pinned with its model hosts to SERVER_CPU, the
# generator to CLIENT_CPU, both at nice -10 (when allowed), so that neither
# takes the other's core. Count no figure whose wrk line says "Non-2xx".
#
# Usage: scripts/bench-serve.sh
# Environment:
#   DURATION     each measurement (default 5s); CONNS connections (default 64)
#   BASE         the commit to compare gRPC against (default: the commit the
#                request-path work branched from, found by its subject, which
#                outlives a rewritten history where its hash may not)
#   BASELINES    the shared baselines folder (default ../shared/baselines)
#   SERVER_CPU, CLIENT_CPU   the cores to pin to (default 0 and 1)
#   PORT         first of the loopback ports used (default 18600)
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
HTTP=127.0.0.1:$PORT
GRPC=127.0.0.1:$((PORT + 1))
INFER_PATH=/v2/models/mlp/infer

git rev-parse --verify --quiet "${BASE:-none}^{commit}" >/dev/null ||
  { echo "bench-serve: no base commit to compare gRPC against (\"$BASE_SUBJECT\" is not in this clone's history); set BASE" >&2; exit 1; }
for tool in wrk taskset perl curl; do
  command -v $tool >/dev/null || { echo "bench-serve: $tool is missing (wrk: apt-get install wrk)" >&2; exit 1; }
done
[ -f "$BASELINES/wrk-json.lua" ] || { echo "bench-serve: no $BASELINES/wrk-json.lua; set BASELINES" >&2; exit 1; }
BASELINES=$(cd "$BASELINES" && pwd)

work=$(mktemp -d)
server=
stop() { if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; server=; fi; }
trap 'stop; rm -rf "$work"' EXIT
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
export HEADER_LEN

ready() { # url: wait up to 60 s for 200
  curl -s -o /dev/null --retry 120 --retry-connrefused --retry-delay 0 --retry-max-time 60 -f "$1" ||
    { echo "bench-serve: $1 never answered" >&2; exit 1; }
}
serve() { # binary: infer serve (this build or base) on mlp
  on_server "$1" serve "$work/models" --onnxruntime-lib "$lib" --host 127.0.0.1 --http-port "$PORT" \
    --grpc-port "$((PORT + 1))" --metrics-port 0 --admin-port 0 --log-level warn &
  server=$!
  ready "http://$HTTP/v2/health/ready"
}
# wrk_rate script body [conns]: requests/s, or the failure when any answer was not 2xx.
wrk_rate() {
  local out
  out=$(BODY=$2 on_client wrk -t1 -c"${3:-$CONNS}" -d"$DURATION" -s "$1" "http://$HTTP$INFER_PATH")
  if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    echo "bench-serve: wrk saw errors:" >&2; echo "$out" >&2; echo 0; return
  fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
overhead() { # body [header length]: p50 in µs at one connection
  env -u HEADER_LEN BODY="$1" ${2:+HEADER_LEN=$2} taskset -c "$CLIENT_CPU" nice -n "$prio" \
    wrk -t1 -c1 -d"$DURATION" -s scripts/bench/overhead.lua "http://$HTTP$INFER_PATH" | awk '/^overhead p50 us:/ {print $4}'
}
grpc_bench() { # concurrency: infer bench's report, as JSON
  on_client "$work/infer" bench "$GRPC" --protocol grpc -m mlp -c "$1" --warmup 1s -d "$DURATION" -o json 2>/dev/null
}
grpc_rate() { grpc_bench "$CONNS" | jq '.achieved_rate // .runs[0].achieved_rate'; }

echo "cores: $(nproc); server on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU, nice $prio; $CONNS connections, $DURATION each" >&2

serve "$work/infer"
unset HEADER_LEN
json=$(wrk_rate "$BASELINES/wrk-json.lua" "$work/req.json")
export HEADER_LEN=$(cat "$work/header_len")
binary=$(wrk_rate "$BASELINES/wrk-binary.lua" "$work/req.bin")
grpc=$(grpc_rate)
ovh_json=$(overhead "$work/req.json")
ovh_binary=$(overhead "$work/req.bin" "$HEADER_LEN")
ovh_grpc=$(grpc_bench 1 | jq '[(.phases // .runs[0].phases)[] | select(.phase == "admission" or .phase == "queue" or .phase == "cache" or .phase == "preprocess" or .phase == "postprocess") | .p50_ms] | add * 1000')
stop

serve "$work/infer-base"
grpc_base=$(grpc_rate)
stop

on_server "$work/naive" -model "$work/models/mlp/1/model.onnx" -name mlp -port "$PORT" -lib "$lib" &
server=$!
ready "http://$HTTP/v2/health/ready"
unset HEADER_LEN
naive=$(wrk_rate "$BASELINES/wrk-json.lua" "$work/req.json")
stop

on_server "$work/loopback" -addr "$HTTP" &
server=$!
ready "http://$HTTP/"
export HEADER_LEN=$(cat "$work/header_len")
loopback=$(wrk_rate "$BASELINES/wrk-binary.lua" "$work/req.bin")
stop

printf '\n%-44s %12s\n' "requests/s, $CONNS connections" ""
printf '%-44s %12.0f\n' "infer serve, JSON (wrk)" "$json" "naive Go server, JSON (wrk)" "$naive" \
  "infer serve, binary (wrk)" "$binary" "loopback server, same binary body (wrk)" "$loopback" \
  "infer serve, gRPC (infer bench)" "$grpc" "infer serve at $BASE, gRPC (infer bench)" "$grpc_base"
printf '\n%-44s %12s\n' "server overhead p50 at one client, µs" ""
printf '%-44s %12.1f\n' "binary" "$ovh_binary" "JSON" "$ovh_json" "gRPC" "$ovh_grpc"
awk -v j="$json" -v n="$naive" -v b="$binary" -v l="$loopback" -v g="$grpc" -v g0="$grpc_base" \
  -v ob="$ovh_binary" -v oj="$ovh_json" -v og="$ovh_grpc" 'BEGIN {
  printf "\nJSON / naive Go:            %5.2fx  (target 3x)\n", j / n
  printf "binary / loopback:          %5.1f%%  (target 50%%)\n", 100 * b / l
  printf "gRPC / the build before:    %5.2fx  (target 1.5x)\n", g / g0
  printf "overhead p50 binary, JSON, gRPC: %.1f, %.1f, %.1f us  (targets 20, 40, 15)\n", ob, oj, og
}'
