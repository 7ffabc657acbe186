#!/usr/bin/env bash
# Checks the deployment files offline, as CI runs them (scripts/ci-drills.sh):
#   Kubernetes: renders deploy/k8s/base and every overlay (kubectl kustomize, or the small
#     renderer below when kubectl is absent) and validates every object against the
#     Kubernetes schemas with `kubernetes-validate --strict` (pip-installed into a venv this
#     script creates and reuses: $CALLGRID_VENV, default target/deploy-venv);
#   systemd: `systemd-analyze verify` on the unit, and `systemd-analyze security` scoring its
#     sandbox: the exposure must not exceed SYSTEMD_EXPOSURE_MAX (checked in: 1.5 of 10).
#   deploy/check.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
SYSTEMD_EXPOSURE_MAX=1.5
KUBERNETES_VERSION=1.30.0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Kubernetes ------------------------------------------------------------------------
venv="${CALLGRID_VENV:-$root/target/deploy-venv}"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate pyyaml
fi

render() { # kustomization directory -> multi-document YAML on stdout
  if command -v kubectl >/dev/null; then
    kubectl kustomize "$1"
  else
    "$venv/bin/python" "$here/k8s/render.py" "$1"
  fi
}

for kustomization in "$here"/k8s/base "$here"/k8s/overlays/*; do
  name="${kustomization#"$here"/k8s/}"
  out="$work/${name//\//-}"
  mkdir -p "$out"
  render "$kustomization" >"$out/all.yaml"
  # One file per object, so a failure names it.
  "$venv/bin/python" - "$out/all.yaml" "$out" <<'EOF'
import sys, yaml
documents = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for index, document in enumerate(documents):
    name = f"{index:02d}-{document['kind']}-{document['metadata']['name']}.yaml"
    with open(f"{sys.argv[2]}/{name}", "w") as file:
        yaml.safe_dump(document, file)
print(f"{len(documents)} objects")
EOF
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$out"/[0-9]*.yaml
  echo "k8s $name: valid against the Kubernetes $KUBERNETES_VERSION schemas"
done

# The learner overlay must really add a fourth site configured as a learner.
learner="$work/overlays-learner/all.yaml"
grep -q 'replicas: 4' "$learner" || { echo "learner overlay: replicas is not 4" >&2; exit 1; }
grep -q 'learners = \[4\]' "$learner" || { echo "learner overlay: node 4 is not a learner" >&2; exit 1; }

# --- systemd ---------------------------------------------------------------------------
unit="$here/systemd/callgrid.service"
# `verify` checks that ExecStart's binary exists: point it at the release binary (or a
# stand-in when none was built) in a copy of the unit.
install -d "$work/systemd/bin"
if [ -n "${CALLGRID_BINARY:-}" ]; then
  ln -s "$(readlink -f "$CALLGRID_BINARY")" "$work/systemd/bin/callgrid"
else
  printf '#!/bin/sh\n' >"$work/systemd/bin/callgrid"
  chmod +x "$work/systemd/bin/callgrid"
fi
sed "s|/usr/local/bin/callgrid|$work/systemd/bin/callgrid|" "$unit" >"$work/systemd/callgrid.service"
systemd-analyze verify --man=no "$work/systemd/callgrid.service"
echo "systemd: unit verified"
exposure="$(systemd-analyze security --offline=true --no-pager "$work/systemd/callgrid.service" |
  sed -n 's/.*Overall exposure level for callgrid.service: \([0-9.]*\).*/\1/p')"
[ -n "$exposure" ] || { echo "systemd-analyze security gave no score" >&2; exit 1; }
if awk -v exposure="$exposure" -v max="$SYSTEMD_EXPOSURE_MAX" 'BEGIN { exit !(exposure > max) }'; then
  echo "systemd: exposure $exposure exceeds $SYSTEMD_EXPOSURE_MAX:" >&2
  systemd-analyze security --offline=true --no-pager "$work/systemd/callgrid.service" | grep '✗' >&2
  exit 1
fi
echo "systemd: exposure $exposure (threshold $SYSTEMD_EXPOSURE_MAX)"
