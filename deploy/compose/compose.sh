#!/usr/bin/env bash
# Runs the Compose tool on this cluster's file: `docker compose` (v2 plugin) where installed,
# else the standalone `docker-compose` (v1.29+, as Debian packages it). Project name: callgrid.
#   deploy/compose/compose.sh ps | logs msk | kill msk | start msk ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p callgrid -f "$here/docker-compose.yml" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -p callgrid -f "$here/docker-compose.yml" "$@"
else
  echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
