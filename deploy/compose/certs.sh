#!/usr/bin/env bash
# Creates a cluster CA and one certificate per node, laid out as the compose file mounts them:
#   DIR/ca/{ca.pem,ca.key}             the CA (keep ca.key offline in production)
#   DIR/node-N/{ca.pem,node-N.pem,node-N.key}   what node N mounts at /etc/callgrid/certs
# Existing files are kept. The key is readable only by uid 65532 (the image's user).
#   deploy/compose/certs.sh DIR CALLGRID_BINARY [NODE_IDS...]   (default ids: 1 2 3)
set -euo pipefail
dir="$1"
callgrid="$2"
shift 2
nodes=("$@")
[ "${#nodes[@]}" -gt 0 ] || nodes=(1 2 3)
ca_dir="$dir/ca"
if [ ! -f "$ca_dir/ca.pem" ]; then
  "$callgrid" certs init --dir "$ca_dir" >/dev/null
fi
for node in "${nodes[@]}"; do
  node_dir="$dir/node-$node"
  if [ ! -f "$node_dir/node-$node.pem" ]; then
    "$callgrid" certs issue --dir "$ca_dir" --node "$node" >/dev/null
    install -d -m 0755 "$node_dir"
    install -m 0644 "$ca_dir/ca.pem" "$ca_dir/node-$node.pem" "$node_dir/"
    install -m 0600 "$ca_dir/node-$node.key" "$node_dir/"
    chown 65532:65532 "$node_dir/node-$node.key" 2>/dev/null || true
    rm -f "$ca_dir/node-$node.key"
  fi
done
