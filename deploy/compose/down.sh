#!/usr/bin/env bash
# Stops the compose cluster (SIGTERM: each node drains). `down.sh -v` also drops the data volumes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/compose.sh" down "$@"
