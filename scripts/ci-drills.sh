#!/usr/bin/env bash
# The drills: real processes and containers on ONE release build of `callgrid`, reused by
# every drill. scripts/test-all.sh runs this after `cargo test` (and `.ci/run` runs that).
# Prints each drill's duration at the end.
#   scripts/ci-drills.sh
#   CALLGRID_BINARY=... CALLGRID_UPGRADE_BINARY=... scripts/ci-drills.sh   # prebuilt binaries
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
durations=()
drill() { # name command...
  local name="$1" start
  shift
  log "drill: $name"
  start=$(date +%s)
  "$@"
  durations+=("$(printf '%-34s %5d s' "$name" $(( $(date +%s) - start )))")
}
report() {
  local status=$?
  log "drill durations"
  printf '  %s\n' "${durations[@]:-none finished}"
  [ "$status" -eq 0 ] || echo "a drill failed (exit $status)" >&2
  exit "$status"
}
trap report EXIT

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# The rolling upgrade's "next release": the same tree with the `codec-next` feature, which
# writes the next state format version byte and reads both. Built first and copied aside:
# the feature changes only callgrid-node, so the plain build after it recompiles that crate
# alone and leaves target/release/callgrid the plain binary every other drill uses.
# (CALLGRID_BINARY and CALLGRID_UPGRADE_BINARY both set: use those, build nothing.)
if [ -z "${CALLGRID_BINARY:-}" ] || [ -z "${CALLGRID_UPGRADE_BINARY:-}" ]; then
  upgrade_dir="$target_dir/release/codec-next"
  drill "release build (codec-next)" env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC cargo build --release --locked -p callgrid-node --bin callgrid \
    --features codec-next
  mkdir -p "$upgrade_dir"
  cp "$target_dir/release/callgrid" "$upgrade_dir/callgrid"
  export CALLGRID_UPGRADE_BINARY="$upgrade_dir/callgrid"

  drill "release build (callgrid)" env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC cargo build --release --locked -p callgrid-node --bin callgrid
  export CALLGRID_BINARY="$target_dir/release/callgrid"
fi
# The plain build must not have left the codec-next binary in place.
! cmp -s "$CALLGRID_BINARY" "$CALLGRID_UPGRADE_BINARY" || { echo "release binary equals the codec-next one" >&2; exit 1; }

drill "image + compose drill" deploy/compose/drill.sh
drill "k8s manifests + systemd unit" deploy/check.sh
drill "backup and restore" cargo test --locked -p callgrid-tests --test backup_restore
drill "runbook" deploy/runbook-drill.sh
drill "browser (wallboard, desktop) + promtool" scripts/ci-browser.sh
# The OpenAPI document against the release binary (CALLGRID_BINARY, exported above).
drill "schemathesis (OpenAPI vs a running node)" scripts/schemathesis.sh
