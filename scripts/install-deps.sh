#!/usr/bin/env bash
# Installs the system packages callgrid's build and tests need, when they are missing.
#   scripts/install-deps.sh            build + unit/integration tests (libclang for RocksDB's bindgen,
#                                      nftables for the partition test in tests/, which runs as root)
#   scripts/install-deps.sh --drills   also what the drills use (chromium, promtool, docker, ...)
# Safe to run repeatedly: it asks apt only for what is not installed yet.
set -euo pipefail

packages=(libclang-dev nftables)
if [ "${1:-}" = "--drills" ]; then
  # docker.io + docker-compose: the compose drill; binutils: objcopy (stripped image);
  # jq, curl, openssl: the compose and runbook drills; systemd: systemd-analyze.
  packages+=(chromium prometheus systemd python3-venv docker.io docker-compose binutils jq curl openssl)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A stale mirror list must not stop the install of packages the cache already knows.
$SUDO apt-get update -q >/dev/null || echo "install-deps: apt-get update failed; trying the cached lists" >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
