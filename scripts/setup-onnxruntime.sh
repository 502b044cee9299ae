#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that infer loads at run time.
#
# Usage: scripts/setup-onnxruntime.sh [x64|arm64]   (default: this machine's)
#
# The library lands in the project's cache folder,
#   ${XDG_CACHE_HOME:-$HOME/.cache}/infer/onnxruntime/<version>/linux-<arch>/libonnxruntime.so.1
# which is the last place infer looks (after --onnxruntime-lib, $ONNXRUNTIME_LIB
# and the binary's own folder). The script is idempotent: an installed library
# whose SHA-256 matches is left alone. It prints the library's path on stdout.
#
# Source: the official build that ships inside the npm package onnxruntime-node
# (fetched with `npm pack`, so no install script of the package ever runs);
# where npm is absent, the official release archive. Either way the library
# must match the pinned SHA-256 below or nothing is installed.
set -euo pipefail

ORT_VERSION=1.24.3
# SHA-256 of bin/napi-v6/linux/<arch>/libonnxruntime.so.1 in onnxruntime-node@1.24.3.
declare -A ORT_SHA256=(
  [x64]=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682
  [arm64]=33032cb5b91c12edbf028d7c69fa40a31848d66c0095448758af237d5e0b07db
)

arch=${1:-}
if [[ -z $arch ]]; then
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "setup-onnxruntime: unsupported machine $(uname -m); pass x64 or arm64" >&2; exit 2 ;;
  esac
fi
[[ -n ${ORT_SHA256[$arch]:-} ]] || { echo "setup-onnxruntime: unknown arch '$arch' (want x64 or arm64)" >&2; exit 2; }
want=${ORT_SHA256[$arch]}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/infer/onnxruntime/$ORT_VERSION/linux-$arch
lib=$cache/libonnxruntime.so.1

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f $lib && $(sha256 "$lib") == "$want" ]]; then
  echo "$lib"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if command -v npm >/dev/null 2>&1; then
  echo "setup-onnxruntime: fetching onnxruntime-node@$ORT_VERSION from the npm registry" >&2
  (cd "$work" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$work/onnxruntime-node-$ORT_VERSION.tgz" -C "$work" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
  got=$work/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1
else
  rel=$([[ $arch == x64 ]] && echo x64 || echo aarch64)
  url=https://github.com/microsoft/onnxruntime/releases/download/v$ORT_VERSION/onnxruntime-linux-$rel-$ORT_VERSION.tgz
  echo "setup-onnxruntime: npm not found; fetching the release archive $url" >&2
  curl -fsSL "$url" -o "$work/ort.tgz"
  tar -xzf "$work/ort.tgz" -C "$work"
  got=$work/onnxruntime-linux-$rel-$ORT_VERSION/lib/libonnxruntime.so.$ORT_VERSION
fi

have=$(sha256 "$got")
if [[ $have != "$want" ]]; then
  echo "setup-onnxruntime: SHA-256 mismatch for $got: got $have, want $want; nothing installed" >&2
  exit 1
fi
mkdir -p "$cache"
install -m 0644 "$got" "$lib.tmp"
mv -f "$lib.tmp" "$lib"
echo "$lib"
