#!/usr/bin/env bash
# Checks infer serve on an NVIDIA GPU through ONNX Runtime's CUDA execution
# provider, against the same server on the CPU, on this one machine:
#   1. the bundled mlp and text-encoder load on the device (the log says so)
#      and answer the same requests with the CPU's outputs, within 1e-4
#      (mlp) and 1e-3 (text-encoder);
#   2. infer bench, closed loop over binary HTTP, at 1 and 64 clients, with
#      dynamic batching off (max_batch_size 0) and on (as bundled), on the
#      device and on the CPU: requests/s, p50 and p99, the server's infer
#      phase and the mean batch;
#   3. the GPU's memory in use while serving.
# Everything goes to the report file (default gpu-check-report.txt), the
# bench reports beside it.
#
# Usage: scripts/gpu-check.sh [REPORT]
# Environment:
#   INFER        the infer binary (default: bin/infer, built if absent)
#   ORT_GPU_DIR  a folder holding a CUDA-enabled ONNX Runtime build:
#                libonnxruntime.so, libonnxruntime_providers_shared.so and
#                libonnxruntime_providers_cuda.so (required)
#   CUDA_SEARCH  where to look for CUDA 13's libraries (cuBLAS, cudart,
#                cuRAND, cuDNN) when the loader does not find them
#                (default: /, which finds the nvidia-* Python packages)
#   DURATION     each bench run's measured time (default 5s)
#   DEVICE       the device checked (default cuda:0; cpu runs the script's
#                own machinery against any ONNX Runtime build)
#   MODELS       the bundled models served (default "mlp text-encoder";
#                mlp is benchmarked and must be among them)
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(realpath -m "${1:-gpu-check-report.txt}")
mkdir -p "$(dirname "$report")"
: >"$report"
say() { echo "$*" | tee -a "$report"; }
fail() {
	say "FAIL: $*"
	exit 1
}

infer=${INFER:-bin/infer}
[ -x "$infer" ] || go build -o "$infer" ./cmd/infer
: "${ORT_GPU_DIR:?set ORT_GPU_DIR to the folder of a CUDA-enabled libonnxruntime.so and its providers}"
device=${DEVICE:-cuda:0}
duration=${DURATION:-5s}
read -ra models <<<"${MODELS:-mlp text-encoder}"
libs=(libonnxruntime.so)
[ "$device" = cpu ] || libs+=(libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so)
for lib in "${libs[@]}"; do
	[ -f "$ORT_GPU_DIR/$lib" ] || fail "$ORT_GPU_DIR/$lib is missing"
done

# CUDA's libraries, wherever the machine keeps them: the provider's own
# needs, and cuDNN, which it opens when it starts.
export LD_LIBRARY_PATH=$ORT_GPU_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
addpath() { case ":$LD_LIBRARY_PATH:" in *":$1:"*) ;; *) LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$1 ;; esac }
if [ "$device" != cpu ]; then
	missing() { ldd "$ORT_GPU_DIR/libonnxruntime_providers_cuda.so" | awk '/not found/ {print $1}'; }
	for lib in $(missing) libcudnn.so.9; do
		dir=$(find "${CUDA_SEARCH:-/}" -xdev -name "$lib" 2>/dev/null | head -1 | xargs -r dirname)
		if [ -n "$dir" ]; then addpath "$dir"; fi
	done
	[ -z "$(missing)" ] || fail "CUDA libraries not found: $(missing | tr '\n' ' ')"
	# cuDNN opens its engine libraries lazily, from its own folder.
	for dir in $(find "${CUDA_SEARCH:-/}" -xdev -path '*/nvidia/*/lib' -type d 2>/dev/null | sort -u); do addpath "$dir"; done
fi

say "# infer check of --device $device, $(date -u +%FT%TZ)"
say "gpu:     $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none)"
say "cpu:     $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
say "infer:   $("$infer" version --onnxruntime-lib "$ORT_GPU_DIR/libonnxruntime.so" 2>&1 | tr '\n' ' ')"
say ""

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# Two repositories of mlp and text-encoder: dynamic batching as bundled
# (on), and off (max_batch_size 0: every request runs alone).
for mode in on off; do
	mkdir -p "$work/$mode"
	for m in "${models[@]}"; do cp -r "testdata/models/$m" "$work/$mode/"; done
done
for m in "${models[@]}"; do
	awk '/^max_batch_size:/ { print "max_batch_size: 0"; next }
	     /^dynamic_batching:/ { skip = 1; next }
	     skip && /^[ \t]/ { next }
	     /^  batch_size:/ { next }
	     { skip = 0; print }' "$work/on/$m/config.yaml" >"$work/off/$m/config.yaml"
done

# serve DEVICE MODE PORT: starts infer serve on PORT (HTTP), PORT+1 (gRPC)
# and PORT+2 (metrics), and waits until it is ready.
serve() {
	local dev=$1 mode=$2 port=$3
	"$infer" serve "$work/$mode" --device "$dev" --onnxruntime-lib "$ORT_GPU_DIR/libonnxruntime.so" \
		--http-port "$port" --grpc-port $((port + 1)) --metrics-port $((port + 2)) --log-level info \
		>"$work/serve-$dev-$mode.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 240); do
		if curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null; then return 0; fi
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.5
	done
	cat "$work/serve-$dev-$mode.log" >>"$report"
	fail "infer serve --device $dev ($mode) did not become ready"
}
stop() {
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
}

# 1. The same outputs on the device as on the CPU.
serve "$device" on 18000
serve cpu on 19000
grep -E 'model loaded|execution provider' "$work/serve-$device-on.log" | tee -a "$report"
grep -q "model=mlp .*device=$device" "$work/serve-$device-on.log" || fail "mlp did not load on $device"
python3 - "${models[@]}" <<'PY' | tee -a "$report"
import json, math, random, sys, urllib.request

def infer(port, model, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{model}/infer",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["outputs"][0]["data"]

random.seed(7)
image = [random.random() for _ in range(8 * 784)]
texts = ["the quick brown fox jumps over the lazy dog", "serving models on a gpu", "a"]
cases = [
    ("mlp", {"inputs": [{"name": "image", "datatype": "FP32", "shape": [8, 784], "data": image}]}, 1e-3),
    ("text-encoder", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts}]}, 1e-3),
]
for model, body, tol in cases:
    if model not in sys.argv[1:]:
        continue
    dev, cpu = infer(18000, model, body), infer(19000, model, body)
    diff = max(abs(a - b) for a, b in zip(dev, cpu))
    ok = len(dev) == len(cpu) and diff <= tol and all(math.isfinite(v) for v in dev)
    print(f"outputs {model}: {len(dev)} values, max |device - cpu| = {diff:.2e} (tolerance {tol:g}): {'ok' if ok else 'DIFFERENT'}")
PY
if grep -q DIFFERENT "$report"; then fail "outputs on $device differ from the CPU's"; fi
say "gpu memory in use while serving: $(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null || echo -)"
stop
stop

# 2. Throughput and latency, on the device and the CPU, batching off and on.
say ""
say "infer bench, closed loop, binary HTTP, mlp, $duration each after 1s of warm-up (the client shares the machine's $(nproc) cores):"
printf '%-8s %-9s %7s %10s %9s %9s %10s %7s\n' device batching clients req/s p50-ms p99-ms infer-p50 batch | tee -a "$report"
port=20000
for dev in "$device" cpu; do
	for mode in off on; do
		serve "$dev" "$mode" "$port"
		for c in 1 64; do
			json="$work/bench-${dev/:/}-$mode-c$c.json"
			before=$(curl -fs "http://127.0.0.1:$port/v2/models/mlp/stats")
			"$infer" bench "http://127.0.0.1:$port" --model mlp --concurrency "$c" --duration "$duration" \
				--warmup 1s --output json >"$json" 2>>"$report" || fail "bench $dev $mode $c"
			after=$(curl -fs "http://127.0.0.1:$port/v2/models/mlp/stats")
			python3 - "$json" "$dev" "$mode" "$c" "$before" "$after" <<'PY' | tee -a "$report"
import json, sys
r = json.load(open(sys.argv[1]))
b, a = (json.loads(s)["model_stats"][0] for s in sys.argv[5:7])
batch = (a["inference_count"] - b["inference_count"]) / max(1, a["execution_count"] - b["execution_count"])
infer = next((p["p50_ms"] for p in r.get("phases", []) if p.get("phase") == "infer"), float("nan"))
print(f"{sys.argv[2]:<8} {sys.argv[3]:<9} {sys.argv[4]:>7} {r['achieved_rate']:>10.0f} {r['latency']['p50_ms']:>9.3f} "
      f"{r['latency']['p99_ms']:>9.3f} {infer:>10.3f} {batch:>7.1f}")
PY
		done
		[ "$dev" = cpu ] || say "  gpu memory in use (batching $mode): $(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null || echo -)"
		stop
		port=$((port + 10))
	done
done
cp "$work"/bench-*.json "$(dirname "$report")/" 2>/dev/null || true
say ""
say "PASS"
