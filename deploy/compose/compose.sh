#!/usr/bin/env bash
# Runs the Compose tool on this cluster's file: `docker compose` (v2 plugin) where installed,
# else the standalone `docker-compose` (v1.29+, as Debian packages it).
#   deploy/compose/compose.sh ps | logs msk | kill msk | start msk ...
# Project name: $CALLGRID_PROJECT (default `callgrid`); it prefixes the containers, the
# network and the volumes, so two projects never share them (the drill uses a unique one).
# $CALLGRID_COMPOSE_OVERRIDE names an extra compose file layered on top (the drill's upgrade).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
files=(-f "$here/docker-compose.yml")
if [ -n "${CALLGRID_COMPOSE_OVERRIDE:-}" ]; then
  files+=(-f "$CALLGRID_COMPOSE_OVERRIDE")
fi
project="${CALLGRID_PROJECT:-callgrid}"
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p "$project" --project-directory "$here" "${files[@]}" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose -p "$project" --project-directory "$here" "${files[@]}" "$@"
else
  echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
