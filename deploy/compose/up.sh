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

ca_dir="$here/certs/ca"
if [ ! -f "$ca_dir/ca.pem" ]; then
  "$callgrid" certs init --dir "$ca_dir"
fi
for node in 1 2 3; do
  node_dir="$here/certs/node-$node"
  if [ ! -f "$node_dir/node-$node.pem" ]; then
    "$callgrid" certs issue --dir "$ca_dir" --node "$node"
    install -d -m 0755 "$node_dir"
    install -m 0644 "$ca_dir/ca.pem" "$ca_dir/node-$node.pem" "$node_dir/"
    # The container runs as uid 65532; the key stays unreadable to anyone else.
    install -m 0600 "$ca_dir/node-$node.key" "$node_dir/"
    chown 65532:65532 "$node_dir/node-$node.key" 2>/dev/null || true
  fi
done
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
