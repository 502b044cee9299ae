#!/usr/bin/env bash
# Many models on one server, on loopback. 50 distinct generated models
# (about 4 MiB of weights each) are served two ways, under the same
# Zipf-distributed stream from infer bench --models:
#   1. all loaded (explicit mode): the reference;
#   2. on demand, under a memory budget that holds 10 of them (10.5 times
#      the largest version's measured size), keep_alive KEEP_ALIVE, the
#      WARM most requested models loaded at start and never evicted
#      (--load-model), as an operator keeps hot models warm.
# The script samples the server's resident memory, its own and its model
# hosts' (each a child process, the default isolation), every 50 ms, and
# reads loads and evictions from /metrics. Then it unloads the warm
# models, waits for keep_alive to unload every other version, and
# compares the server's memory with the empty server's. Last, poll
# mode: a new version copied into a polled repository while infer bench
# sends to the model must serve within two poll intervals, with no
# request failed.
# With two cores or more the server (and its model hosts) run on core 0
# and the generator on core 1.
#
# Prints one line per target, ok or MISS, and exits 1 when one is missed:
#   every request answered (both servers, and during the poll switch);
#   the hot models' p99 (the requests to the 3 most requested models,
#   pooled from the histograms of infer bench's report) within 1.2x of
#   the all-loaded server's; each hot model's own p99 is printed too, for
#   information (a model with 70 requests has the worst of them for its
#   p99); RSS (server + hosts) never above budget +
#   OVERHEAD; evictions counted; RSS after every unload within 10% of the
#   empty server's; the new version serving within two poll intervals.
#
# Usage: scripts/many-models.sh
#   MANY_MODELS=50 MANY_MIB=4 MANY_HOLD=10 ZIPF=1.6 QPS=40 DURATION=60s
#   WARMUP=10s KEEP_ALIVE=20s OVERHEAD_MIB=160 POLL_SECS=2 WARM=3
set -euo pipefail
cd "$(dirname "$0")/.."
n=${MANY_MODELS:-50} mib=${MANY_MIB:-4} hold=${MANY_HOLD:-10}
zipf=${ZIPF:-1.6} qps=${QPS:-40} duration=${DURATION:-60s} warmup=${WARMUP:-10s}
keep_alive=${KEEP_ALIVE:-20s} overhead_mib=${OVERHEAD_MIB:-160} poll_secs=${POLL_SECS:-2}
warm=${WARM:-3}

go build -o bin/infer ./cmd/infer
. scripts/serving.sh
go build -o "$work/benchpool" ./scripts/benchpool
sampler=""
stop_sampler() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  sampler=""
}
before_stop=stop_sampler
READY_WAIT=1200 # 50 models to scan
go run ./testdata/gen -many "$n" -many-mib "$mib" -dir "$work/repo"

# rss PID: the resident memory of PID and its children, in bytes.
rss() {
  python3 - "$1" <<'EOF'
import sys
def rss(pid):
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
def children(pid):
    out = []
    try:
        import glob
        for t in glob.glob("/proc/%s/task/*/children" % pid):
            out += open(t).read().split()
    except OSError:
        pass
    return out
pid = sys.argv[1]
print(rss(pid), sum(rss(c) for c in children(pid)))
EOF
}

# sample PID FILE: every 50 ms, the server's RSS and its hosts', the
# largest sum kept in FILE as "total self hosts" (bytes).
sample() {
  python3 - "$1" "$2" <<'EOF' &
import sys, time, glob
pid, out = sys.argv[1], sys.argv[2]
def rss(p):
    try:
        for line in open("/proc/%s/status" % p):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
peak = (0, 0, 0)
while True:
    kids = []
    for t in glob.glob("/proc/%s/task/*/children" % pid):
        try:
            kids += open(t).read().split()
        except OSError:
            pass
    s = rss(pid)
    if s == 0:
        break
    h = sum(rss(k) for k in kids)
    if s + h > peak[0]:
        peak = (s + h, s, h)
        with open(out, "w") as f:
            f.write("%d %d %d\n" % peak)
    time.sleep(0.05)
EOF
  sampler=$!
}

metric_sum() { # NAME [LABEL-FILTER]: the sum of a metric's samples
  curl -s "http://$metrics/metrics" | python3 -c '
import sys
name, want = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
total = 0.0
for line in sys.stdin:
    if line.startswith(name + "{") or line.startswith(name + " "):
        if want in line:
            total += float(line.rsplit(" ", 1)[1])
print(int(total))' "$@"
}

bench() { # OUT.json: the Zipf stream over every model
  "${pin_client[@]}" bin/infer bench "http://$http" --models 'm*' --zipf "$zipf" --qps "$qps" --schedule poisson \
    -d "$duration" --warmup "$warmup" --timeout 30s -o json >"$1"
}

echo "many-models.sh: $n models of ${mib} MiB, Zipf s=$zipf at $qps/s (Poisson) for $duration after $warmup of warm-up${pin_server:+; server on core 0, generator on core 1}" >&2

# The empty server: on demand, nothing loaded yet.
start_server "$work/repo" --model-control-mode on-demand
sleep 3
read -r empty_self empty_hosts < <(rss "$server")
stop_server

# 1. Every version loaded.
start_server "$work/repo" --model-control-mode explicit
size=$(curl -s "http://$metrics/metrics" | python3 -c '
import sys
print(int(max(float(l.rsplit(" ", 1)[1]) for l in sys.stdin if l.startswith("infer_model_loaded_bytes{"))))')
budget=$(python3 -c "print(int($size * ($hold + 0.5)))")
echo "many-models.sh: all $n loaded; the largest version measures $size bytes; budget $budget bytes (holds $hold)" >&2
bench "$work/all.json"
stop_server

# 2. On demand under the budget.
warm_flags=()
for ((i = 0; i < warm; i++)); do warm_flags+=(--load-model "$(printf 'm%03d' "$i")"); done
start_server "$work/repo" --model-control-mode on-demand --memory-budget "$budget" --keep-alive "$keep_alive" "${warm_flags[@]}"
sample "$server" "$work/peak"
bench "$work/budget.json"
loads=$(metric_sum infer_model_loads_total)
evictions=$(metric_sum infer_model_unloads_total 'reason="budget"')
expiries=$(metric_sum infer_model_unloads_total 'reason="keep_alive"')
cold_count=$(metric_sum infer_model_cold_start_seconds_count)
cold_sum=$(curl -s "http://$metrics/metrics" | awk '/^infer_model_cold_start_seconds_sum/ {s += $2} END {printf "%.3f", s}')
# Everything unloads after keep_alive (the sweeper looks every second),
# the warm models when told to.
for ((i = 0; i < warm; i++)); do
  curl -sf -X POST "http://$admin/v2/repository/models/$(printf 'm%03d' "$i")/unload" >/dev/null
done
for _ in $(seq 120); do
  [ "$(metric_sum infer_model_loaded_bytes)" = 0 ] && break
  sleep 1
done
sleep 3
read -r after_self after_hosts < <(rss "$server")
after_loaded=$(metric_sum infer_model_loaded_bytes)
read -r peak peak_self peak_hosts <"$work/peak"
stop_server

# 3. Poll mode: a new version of m000 copied in while it serves.
mkdir -p "$work/polled" "$work/stage"
cp -r "$work/repo/m000" "$work/repo/m001" "$work/polled/"
go run ./testdata/gen -many 1 -many-mib "$mib" -many-version 2 -dir "$work/stage"
start_server "$work/polled" --model-control-mode poll --repository-poll-secs "$poll_secs"
"${pin_client[@]}" bin/infer bench "http://$http" -m m000 --qps 50 -d 15s --timeout 10s -o json >"$work/poll.json" &
loader=$!
switch=$(python3 - "$http" "$work/stage/m000/2" "$work/polled/m000/2" <<'EOF'
import json, os, sys, time, urllib.request
http, src, dst = sys.argv[1:]
body = json.dumps({"inputs": [{"name": "features", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}).encode()
def version():
    req = urllib.request.Request("http://%s/v2/models/m000/infer" % http, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["model_version"]
time.sleep(3)
assert version() == "1"
os.rename(src, dst)  # one step: the poller sees the whole folder or none
t0 = time.monotonic()
failed = 0
while time.monotonic() - t0 < 30:
    try:
        if version() == "2":
            break
    except Exception:
        failed += 1
    time.sleep(0.02)
print("%.3f %d" % (time.monotonic() - t0, failed))
EOF
)
wait "$loader"
stop_server

python3 - "$work/all.json" "$work/budget.json" "$work/poll.json" <<EOF
import json, subprocess, sys
alls, under, poll = (json.load(open(p)) for p in sys.argv[1:])
def ordinal(k):
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, "%dth" % k)
MiB = 1 << 20
budget, overhead = $budget, $overhead_mib * MiB
peak, peak_self, peak_hosts = $peak, $peak_self, $peak_hosts
empty, after = $empty_self + $empty_hosts, $after_self + $after_hosts
switch, switch_failed = "$switch".split()
switch, switch_failed = float(switch), int(switch_failed)
ok = True
def line(good, text):
    global ok
    ok = ok and good
    print(("  ok   " if good else "  MISS ") + text)
print("many-models.sh figures: $n models, budget %.0f MiB (%d x %.1f MiB, holds $hold), Zipf s=$zipf at $qps/s for $duration" % (budget / MiB, 1, $size / MiB))
for name, r in (("all loaded", alls), ("on demand", under)):
    line(r["requests"] > 0 and r["ok"] == r["requests"], "%s: %d requests, %d answered, errors %s; p50 %.2f ms, p99 %.2f ms"
         % (name, r["requests"], r["ok"], r["errors"] or "none", r["latency"]["p50_ms"], r["latency"]["p99_ms"]))
hot = [m["model"] for m in under["models"][:3]]
def pooled(path):
    n, p50, p99, mx = subprocess.run(["$work/benchpool", path] + hot, check=True, capture_output=True, text=True).stdout.split()
    return int(n), float(p99)
(n_od, od99), (n_all, all99) = pooled(sys.argv[2]), pooled(sys.argv[1])
line(od99 <= 1.2 * all99, "hot models %s (%d requests together): p99 %.2f ms on demand, %.2f ms all loaded: %.2fx (target: within 1.2x)"
     % ("+".join(hot), n_od, od99, all99, od99 / all99))
ref = {m["model"]: m for m in alls["models"]}
for m in under["models"][:3]:
    a = ref[m["model"]]
    print("  --   %s alone (%d requests, p99 the %s worst): p99 %.2f ms on demand, %.2f ms all loaded: %.2fx"
          % (m["model"], m["requests"], ordinal(m["requests"] // 100 + 1), m["latency"]["p99_ms"], a["latency"]["p99_ms"],
             m["latency"]["p99_ms"] / a["latency"]["p99_ms"]))
line(peak <= budget + overhead, "RSS peak %.0f MiB (server %.0f + hosts %.0f) against budget + overhead %.0f + %.0f MiB"
     % (peak / MiB, peak_self / MiB, peak_hosts / MiB, budget / MiB, overhead / MiB))
line($evictions > 0, "loads %d (cold starts %d, %.2f s in all), evictions %d, keep_alive unloads %d"
     % ($loads, $cold_count, $cold_sum, $evictions, $expiries))
line($after_loaded == 0 and after <= 1.1 * empty, "after every unload: RSS %.1f MiB, empty server %.1f MiB: %+.1f%% (target: within 10%%)"
     % (after / MiB, empty / MiB, 100 * (after - empty) / empty))
line(switch <= 2 * $poll_secs and switch_failed == 0 and poll["ok"] == poll["requests"],
     "poll: version 2 served %.2f s after it was copied in (target: within %d s), %d of %d requests answered meanwhile"
     % (switch, 2 * $poll_secs, poll["ok"], poll["requests"]))
sys.exit(0 if ok else 1)
EOF
