#!/usr/bin/env bash
# Checks the OpenAPI document against a running node with schemathesis (a pip package,
# installed once into a venv under the cargo target directory):
#   - starts `callgrid node` in its embedded single-site default mode on a free port and a
#     temp data directory, and reads the admin token it prints once;
#   - runs schemathesis with that token over every operation except the cluster membership
#     changes (a fuzzed learner or voter would break the one-node quorum), and fails on any
#     5xx and any answer whose status, content type, headers or body the document does not
#     describe;
#   - stops the node and removes the temp directory (also on failure or Ctrl-C).
#
#   scripts/schemathesis.sh                                # builds the debug binary if needed
#   CALLGRID_BINARY=target/release/callgrid scripts/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=50 SCHEMATHESIS_SEED=7 scripts/schemathesis.sh
# Needs python3 with venv (Debian: python3-venv; scripts/install-deps.sh --drills) and
# network access to PyPI on the first run. Reports land in the temp directory and are printed
# on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
binary="${CALLGRID_BINARY:-}"
if [ -z "$binary" ]; then
  cargo build --locked -p callgrid-node --bin callgrid
  binary="$target_dir/debug/callgrid"
fi
[ -x "$binary" ] || { echo "schemathesis: no callgrid binary at $binary" >&2; exit 1; }

venv="$target_dir/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi
"$venv/bin/schemathesis" --version

work="$(mktemp -d)"
node_pid=""
cleanup() {
  local status=$?
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/node.log" ]; then
    echo "--- node log (last 40 lines)" >&2
    tail -n 40 "$work/node.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
"$binary" node --http "127.0.0.1:$port" --data-dir "$work/data" >"$work/node.log" 2>&1 &
node_pid=$!

ready=""
for _ in $(seq 1 120); do
  if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "schemathesis: the node exited before it was ready" >&2
    exit 1
  fi
  if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('$base/readyz', timeout=2).status == 200 else 1)" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "schemathesis: the node was not ready within 60 s" >&2; exit 1; }
token="$(sed -n 's/^admin token (shown once, keep it): //p' "$work/node.log" | head -n 1)"
[ -n "$token" ] || { echo "schemathesis: the node printed no admin token" >&2; exit 1; }

echo "schemathesis: node ready at $base"
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --exclude-path-regex '^/api/v1/cluster/(learners|voters/|members/|leader)' \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --request-timeout 20 \
  --workers 1 \
  --suppress-health-check all \
  --report junit \
  --report-dir "$work/report"
