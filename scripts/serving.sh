# Sourced by the scripts that run infer serve on loopback and measure it
# (overload.sh, queue-bench.sh, many-models.sh): a work folder removed at
# exit with the server stopped, the server and the measuring client pinned
# to cores of their own where two exist, and start_server.
work=$(mktemp -d)
server=""
# before_stop, when a script sets it, names a command stop_server runs
# first (a sampler of the server, say).
before_stop=""
stop_server() {
  if [ -n "$before_stop" ]; then $before_stop; fi
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=""
}
trap 'stop_server; rm -rf "$work"' EXIT

# With two cores or more the server (and its model hosts) run on core 0 and
# the client on core 1: what is measured is the server, not the client's CPU.
pin_server=() pin_client=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
fi

# start_server REPOSITORY [FLAGS...]: infer serve on fresh loopback ports,
# base to base+3 (HTTP, gRPC, metrics, admin; a flag QUEUE_PORT becomes
# base+4), another set when one is taken. It waits for readiness up to
# READY_WAIT tenths of a second (default 300) and sets server, base, http,
# metrics and admin; it exits the script when the server cannot start.
start_server() {
  local repo=$1
  shift
  for _ in 1 2 3; do
    base=$((20000 + RANDOM % 20000))
    http=127.0.0.1:$base metrics=127.0.0.1:$((base + 2)) admin=127.0.0.1:$((base + 3))
    local args=() a
    for a in "$@"; do
      [ "$a" = QUEUE_PORT ] && a=$((base + 4))
      args+=("$a")
    done
    "${pin_server[@]}" bin/infer serve "$repo" --host 127.0.0.1 --http-port "$base" --grpc-port $((base + 1)) \
      --metrics-port $((base + 2)) --admin-port $((base + 3)) "${args[@]}" >"$work/serve.log" 2>&1 &
    server=$!
    for _ in $(seq "${READY_WAIT:-300}"); do
      curl -sf "http://$http/v2/health/ready" >/dev/null && return 0
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
    grep -q "address already in use" "$work/serve.log" || break
  done
  cat "$work/serve.log" >&2
  exit 1
}
