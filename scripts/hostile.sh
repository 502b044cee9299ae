#!/usr/bin/env bash
# Hostile clients: infer serve on loopback against what a hostile or broken
# client sends, while a well-behaved client measures the mlp model.
#   1. Builds bin/infer and starts `infer serve` on 127.0.0.1 ports, with
#      the default limits but a read timeout of HOSTILE_READ_TIMEOUT
#      (default 10s, so that the script ends in about a minute).
#   2. Starts the normal client (bin/hostile -client, a process of its own),
#      which measures mlp's p99 unloaded and then under attack; runs the
#      attackers (bin/hostile, niced below it; with two cores or more the
#      server has core 0 and both of them core 1), which send at once: slow bodies
#      (a byte a second), bodies of 64 MiB and of 1 TiB announced and never
#      sent, HOSTILE_IDLE_CONNS (default 10,000) idle connections and
#      HOSTILE_NAMES (default 3,000) made-up model names; then enormous
#      declared shapes, shapes whose product overflows int64 and JSON
#      nested 100,000 deep; then, once the normal client has stopped, on
#      the gRPC port, connections of stalled calls holding 32 MiB of 64 MiB
#      messages each, and messages sent a byte a frame. It samples the server's VmRSS and VmHWM from
#      /proc/PID/status and counts the metric series before and after.
# Fails (exit 1) when the server dies, its resident memory passes
# HOSTILE_RSS_MIB (default 1024 MiB), a made-up name adds metric series,
# an attack is not refused as it should be, or the normal client's p99
# under attack is over twice its unloaded p99.
#
# HOSTILE_DECODER=0 leaves out the decoder's attacks, to see the
# transport's figures alone while a decoder bug takes the server down;
# HOSTILE_GRPC=0 leaves out the gRPC port's.
#
# Usage: scripts/hostile.sh            HOSTILE_DECODER=0 scripts/hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
read_timeout=${HOSTILE_READ_TIMEOUT:-10s}
idle=${HOSTILE_IDLE_CONNS:-10000}
names=${HOSTILE_NAMES:-3000}
rss_mib=${HOSTILE_RSS_MIB:-1024}
decoder=true
[ "${HOSTILE_DECODER:-1}" = 0 ] && decoder=false
grpc_attacks=1
[ "${HOSTILE_GRPC:-1}" = 0 ] && grpc_attacks=

# 10,000 idle connections need as many descriptors in the server and in
# the attacker: raise the soft limit as far as the hard one allows.
need=$((idle + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  echo "hostile.sh: the hard limit on open files is $hard; using $((hard - 1024)) idle connections" >&2
  idle=$((hard - 1024))
  need=$hard
fi
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ] && ulimit -Sn "$need"

go build -o bin/infer ./cmd/infer
go build -o bin/hostile ./scripts/hostile

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# With two cores or more, the server (and its model hosts) run on the first
# and the attackers with the measuring client on the second, so that what
# is measured is the server's answer to the attack, not the attackers'
# own CPU.
pin_server=() pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

base=$((20000 + RANDOM % 20000))
http=$base grpc=$((base + 1)) metrics=$((base + 2)) admin=$((base + 3))
"${pin_server[@]}" bin/infer serve testdata/models --host 127.0.0.1 --http-port "$http" --grpc-port "$grpc" --metrics-port "$metrics" \
  --admin-port "$admin" --read-timeout "$read_timeout" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
echo "hostile.sh: infer serve (pid $server${pin_server:+, core 0; attackers on core 1}) on 127.0.0.1:$http; $idle idle connections, $names made-up names, read timeout $read_timeout, RSS bound $rss_mib MiB" >&2

# The normal client is a process of its own, as a real one is; the
# attackers run at a lower priority than it on their core, so that what it
# measures is the server.
"${pin_client[@]}" bin/hostile -client -http "127.0.0.1:$http" -ready "$work/ready" >"$work/client.json" &
client=$!
for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.1; done
[ -e "$work/ready" ] || { echo "hostile.sh: the normal client did not measure its baseline" >&2; exit 1; }

status=0
timeout 600 nice -n 10 "${pin_client[@]}" bin/hostile -client-pid "$client" -client-out "$work/client.json" -http "127.0.0.1:$http" ${grpc_attacks:+-grpc "127.0.0.1:$grpc"} -metrics "127.0.0.1:$metrics" -pid "$server" \
  -rss-bound $((rss_mib << 20)) -read-timeout "$read_timeout" -idle-conns "$idle" -names "$names" -decoder="$decoder" || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "FAIL the server process is gone; the end of its log:" >&2
  tail -20 "$work/serve.log" >&2
  server=""
  status=1
fi
panics=$(grep -c '"panic serving a request"\|panic serving a request' "$work/serve.log" || true)
echo "server log: $(wc -l <"$work/serve.log") lines, $panics recovered panics"
exit "$status"
