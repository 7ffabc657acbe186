#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the subset these manifests
use (`resources`: files and directories; `patches`: `path` to a partial object, merged into
the object of the same kind and name — maps merge, everything else is replaced). Used by
deploy/check.sh when kubectl is not installed.

    render.py deploy/k8s/overlays/learner > all.yaml
"""
import os
import sys

import yaml


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return patch


def render(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as file:
        kustomization = yaml.safe_load(file)
    known = {"apiVersion", "kind", "resources", "patches"}
    unknown = set(kustomization) - known
    if unknown:
        sys.exit(f"{directory}: render.py does not handle {sorted(unknown)}; use kubectl kustomize")
    objects = []
    for resource in kustomization.get("resources", []):
        path = os.path.join(directory, resource)
        if os.path.isdir(path):
            objects.extend(render(path))
        else:
            with open(path) as file:
                objects.extend(document for document in yaml.safe_load_all(file) if document)
    for patch in kustomization.get("patches", []):
        with open(os.path.join(directory, patch["path"])) as file:
            partial = yaml.safe_load(file)
        key = (partial["kind"], partial["metadata"]["name"])
        targets = [i for i, o in enumerate(objects) if (o["kind"], o["metadata"]["name"]) == key]
        if len(targets) != 1:
            sys.exit(f"{directory}: patch {patch['path']} matches {len(targets)} objects")
        objects[targets[0]] = merge(objects[targets[0]], partial)
    return objects


if __name__ == "__main__":
    yaml.safe_dump_all(render(sys.argv[1]), sys.stdout, sort_keys=False)
