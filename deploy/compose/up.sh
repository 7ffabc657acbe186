#!/usr/bin/env bash
# Starts the three-city compose cluster: builds the image FROM scratch, creates the cluster CA
# and one certificate per node (once; kept in deploy/compose/certs), then `docker compose up`.
#   deploy/compose/up.sh            # then: curl -s localhost:8081/readyz
#   deploy/compose/down.sh          # stop (add -v to drop the data volumes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
"$root/deploy/image/build.sh" "${CALLGRID_TAG:-dev}"
if [ -n "${CALLGRID_BINARY:-}" ]; then
  callgrid="$CALLGRID_BINARY"
else
  target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  callgrid="$target_dir/release/callgrid"
fi

"$here/certs.sh" "$here/certs" "$callgrid"
"$here/compose.sh" up -d
# Wait (bounded) until every site answers /readyz: Raft has a leader and the site is serving.
for port in 8081 8082 8083; do
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then continue 2; fi
    sleep 1
  done
  echo "site on port $port is not ready after 120 s; see: $here/compose.sh logs" >&2
  exit 1
done
echo "sites: msk http://127.0.0.1:8081  ekb http://127.0.0.1:8082  nsk http://127.0.0.1:8083"
echo "admin tokens: $here/compose.sh logs | grep -i 'admin token'"
