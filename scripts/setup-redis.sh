#!/usr/bin/env bash
# Installs redis-server from Debian's package when it is missing: the queue
# tests start it on a loopback port (pkg/queue/queuetest). Idempotent.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is missing and there is no apt-get: install redis-server (7 or newer) by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
# The package starts a system service; the tests start their own.
$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
redis-server --version
