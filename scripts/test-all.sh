#!/usr/bin/env bash
# Every test callgrid has, on a fresh Debian machine with only Rust: installs the system
# packages it needs, runs the workspace's tests, then the drills (real processes, containers,
# a real browser) on one release build. `.ci/run` calls this after fmt and clippy.
#   scripts/test-all.sh              everything
#   scripts/test-all.sh --no-drills  the workspace's tests only (no release build)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

drills=1
[ "${1:-}" = "--no-drills" ] && drills=0
# The drills (and the packages only they need) arrive with scripts/ci-drills.sh.
[ -x scripts/ci-drills.sh ] || drills=0

if [ "$drills" -eq 1 ]; then
  log "system packages (build + drills)"
  scripts/install-deps.sh --drills
else
  log "system packages (build)"
  scripts/install-deps.sh
fi

log "cargo test --workspace"
cargo test --workspace --locked

if [ "$drills" -eq 1 ] && [ -x scripts/ci-drills.sh ]; then
  scripts/ci-drills.sh
fi
log "all tests passed"
