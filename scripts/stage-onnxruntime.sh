#!/usr/bin/env bash
# Copies the verified ONNX Runtime library for each release architecture to
# DEST/<os>_<arch>/libonnxruntime.so.1, where .goreleaser.yaml picks it up to
# ship beside the binary in each archive.
set -euo pipefail
dest=${1:?usage: scripts/stage-onnxruntime.sh DEST}
here=$(dirname "$0")
for pair in amd64:x64 arm64:arm64; do
  goarch=${pair%%:*} ortarch=${pair##*:}
  lib=$("$here/setup-onnxruntime.sh" "$ortarch")
  mkdir -p "$dest/linux_$goarch"
  install -m 0644 "$lib" "$dest/linux_$goarch/libonnxruntime.so.1"
done
