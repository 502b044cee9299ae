#!/usr/bin/env bash
# Lays out a CUDA-capable ONNX Runtime for Linux x64 in DEST (default
# ~/.cache/infer/onnxruntime-gpu), for scripts/gpu-check.sh's ORT_GPU_DIR or
# `infer serve --onnxruntime-lib DEST/libonnxruntime.so --device cuda:0`:
# ONNX Runtime 1.29.0 and its CUDA 13 execution provider, from the npm
# registry (packages com.github.asus4.onnxruntime and
# com.github.asus4.onnxruntime.linux-x64-gpu 0.4.9, fetched with npm pack,
# no install script run), each file checked against its pinned SHA-256.
# Idempotent; prints DEST. CUDA 13's cuBLAS, cudart, cuRAND and cuDNN 9 come
# from the GPU machine (gpu-check.sh finds them).
#
# To carry it to a machine without network, pack DEST: the CUDA provider is
# about 230 MB (165 MB compressed).
set -euo pipefail
dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/infer/onnxruntime-gpu}
version=0.4.9
files=(
	"com.github.asus4.onnxruntime libonnxruntime.so 5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca"
	"com.github.asus4.onnxruntime.linux-x64-gpu libonnxruntime_providers_cuda.so 56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037"
	"com.github.asus4.onnxruntime.linux-x64-gpu libonnxruntime_providers_shared.so c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772"
)
ok() { [ -f "$dest/$1" ] && echo "$2  $dest/$1" | sha256sum -c --quiet - 2>/dev/null; }
missing=0
for f in "${files[@]}"; do
	read -r _ name sum <<<"$f"
	ok "$name" "$sum" || missing=1
done
if [ "$missing" = 1 ]; then
	command -v npm >/dev/null || { echo "setup-onnxruntime-gpu: npm is needed to fetch the packages" >&2; exit 1; }
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$dest"
	for pkg in com.github.asus4.onnxruntime com.github.asus4.onnxruntime.linux-x64-gpu; do
		(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
		tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp" --wildcards 'package/Plugins/Linux/x64/*.so'
	done
	for f in "${files[@]}"; do
		read -r _ name sum <<<"$f"
		install -m 0755 "$tmp/package/Plugins/Linux/x64/$name" "$dest/$name"
		ok "$name" "$sum" || { echo "setup-onnxruntime-gpu: $name does not match its pinned SHA-256" >&2; rm -f "$dest/$name"; exit 1; }
	done
fi
echo "$dest"
