#!/usr/bin/env python3
"""Render deploy/k8s without a cluster or a kustomize binary, and check what kubernetes-validate cannot.

    python scripts/k8s_render.py render deploy/k8s/overlays/cpu > cpu.yaml    # what `kubectl kustomize` prints
    python scripts/k8s_render.py same cpu.yaml kubectl-cpu.yaml               # equal up to order (exit 1 if not)
    python scripts/k8s_render.py split cpu.yaml OUT_DIR                       # core kinds / CRDs / predictor pods
    python scripts/k8s_render.py crds OUT_DIR/crds.yaml                       # CRDs against deploy/k8s/schemas

The renderer implements the subset of kustomize these manifests use, and refuses anything else (so a new
feature in a kustomization fails loudly instead of rendering wrong): ``resources`` (files and directories),
``components``, ``images`` (newName/newTag on containers and initContainers) and ``patches`` given by ``path``
as strategic-merge patches, with Kubernetes' merge keys for the lists that have them (containers and env by
name, volumeMounts by mountPath, ports by containerPort...) and replacement for the others. scripts/k8s_check.sh
compares its output with `kubectl kustomize` wherever kubectl is installed.

Needs PyYAML (and jsonschema for ``crds``); both come with kubernetes-validate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "components", "images", "patches"}
# Strategic-merge keys of the list fields these manifests patch (k8s.io/api: patchMergeKey); other lists replace.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
# Kinds the Kubernetes API serves itself (kubernetes-validate knows them); everything else is a CRD here.
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "autoscaling/v2", "batch/v1", "networking.k8s.io/v1"}
Doc = dict[str, Any]


class RenderError(Exception):
    pass


def _load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def merge(base: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge of ``patch`` into ``base`` (maps merge, keyed lists merge by their key, null deletes)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v, k)
            else:
                out[k] = v
        return out
    merge_key = MERGE_KEYS.get(key)
    if merge_key and isinstance(base, list) and isinstance(patch, list):
        out_list = list(base)
        for item in patch:
            at = next((i for i, b in enumerate(out_list) if b.get(merge_key) == item.get(merge_key)), None)
            if at is None:
                out_list.append(item)
            else:
                out_list[at] = merge(out_list[at], item)
        return out_list
    return patch


def _containers(doc: Doc) -> list[Doc]:
    """Every container and init container of a workload, at whatever depth its pod spec sits."""
    found: list[Doc] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("containers", "initContainers") and isinstance(v, list):
                    found.extend(c for c in v if isinstance(c, dict))
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """name, tag, digest of ``registry/name:tag@digest`` (a registry port is not a tag)."""
    image, _, digest = image.partition("@")
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
        return name, tag, digest or None
    return image, None, digest or None


def _set_image(doc: Doc, rule: Doc) -> None:
    for c in _containers(doc):
        name, tag, digest = _split_image(str(c.get("image", "")))
        if name != rule["name"]:
            continue
        new, tag, digest = rule.get("newName", name), rule.get("newTag", tag), rule.get("digest", digest)
        c["image"] = f"{new}@{digest}" if digest else (f"{new}:{tag}" if tag else new)


def render(directory: Path) -> list[Doc]:
    """The resources a kustomization directory renders to (its own order; kustomize sorts by kind)."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{kfile}: this renderer does not implement {sorted(unknown)}; use kubectl kustomize")
    docs: list[Doc] = []
    for r in k.get("resources", []):
        p = (directory / r).resolve()
        docs += render(p) if p.is_dir() else _load_docs(p)
    for c in k.get("components", []):
        comp = (directory / c).resolve()
        ck = yaml.safe_load((comp / "kustomization.yaml").read_text())
        if ck.get("kind") != "Component":
            raise RenderError(f"{comp}: a component's kustomization must be kind: Component")
        docs = _apply(comp, ck, docs + [d for r in ck.get("resources", []) for d in _load_docs(comp / r)])
    return _apply(directory, k, docs)


def _apply(directory: Path, k: Doc, docs: list[Doc]) -> list[Doc]:
    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise RenderError(f"{directory}: only patches given by path are implemented, got {sorted(p)}")
        for patch in _load_docs(directory / p["path"]):
            kind, name = patch.get("kind"), patch.get("metadata", {}).get("name")
            targets = [i for i, d in enumerate(docs) if d.get("kind") == kind and d["metadata"]["name"] == name]
            if len(targets) != 1:
                raise RenderError(f"{directory / p['path']}: patch target {kind}/{name} matched {len(targets)}")
            docs[targets[0]] = merge(docs[targets[0]], patch)
    for rule in k.get("images", []):
        for d in docs:
            _set_image(d, rule)
    return docs


def _normal(node: Any, key: str = "") -> Any:
    """Order-free form for comparison: keyed lists become maps (kustomize may order merged items differently)."""
    if isinstance(node, dict):
        return {k: _normal(v, k) for k, v in node.items()}
    if isinstance(node, list):
        merge_key = MERGE_KEYS.get(key)
        if merge_key and all(isinstance(i, dict) and merge_key in i for i in node):
            return {str(i[merge_key]): _normal(i) for i in node}
        return [_normal(i) for i in node]
    return node


def by_id(docs: list[Doc]) -> dict[str, Any]:
    return {f"{d['apiVersion']}/{d['kind']}/{d['metadata']['name']}": _normal(d) for d in docs}


def split(docs: list[Doc], out: Path) -> None:
    """core.yaml (for kubernetes-validate), crds.yaml, and pods.yaml: each InferenceService predictor as a Pod, so
    its containers, volumes and security context are validated against the Kubernetes schema too."""
    out.mkdir(parents=True, exist_ok=True)
    core = [d for d in docs if d["apiVersion"] in CORE_GROUPS]
    crds = [d for d in docs if d["apiVersion"] not in CORE_GROUPS]
    pods = []
    pod_fields = {
        "containers",
        "initContainers",
        "volumes",
        "securityContext",
        "serviceAccountName",
        "tolerations",
        "nodeSelector",
        "affinity",
        "terminationGracePeriodSeconds",
        "automountServiceAccountToken",
        "imagePullSecrets",
        "priorityClassName",
        "runtimeClassName",
        "schedulerName",
        "hostname",
    }
    for d in crds:
        if d["kind"] == "InferenceService":
            predictor = d["spec"]["predictor"]
            spec = {k: v for k, v in predictor.items() if k in pod_fields}
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{d['metadata']['name']}-predictor"},
                    "spec": spec,
                }
            )
    for name, part in (("core.yaml", core), ("crds.yaml", crds), ("pods.yaml", pods)):
        (out / name).write_text(yaml.safe_dump_all(part, sort_keys=False) if part else "")


def check_crds(path: Path, schemas: Path) -> list[str]:
    """Each CRD document against deploy/k8s/schemas/<group>_<version>_<kind>.json (a subset of the CRD's
    OpenAPI schema: the fields these manifests use, unknown fields refused where the CRD refuses them)."""
    import jsonschema

    problems = []
    for d in _load_docs(path):
        name = f"{d['apiVersion'].replace('/', '_')}_{d['kind'].lower()}.json"
        schema_file = schemas / name
        if not schema_file.is_file():
            problems.append(f"{d['kind']}/{d['metadata']['name']}: no schema {schema_file}")
            continue
        validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text()))
        problems += [
            f"{d['kind']}/{d['metadata']['name']}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(d)
        ]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "render":
        print(yaml.safe_dump_all(render(Path(argv[1])), sort_keys=False), end="")
        return 0
    if len(argv) == 3 and argv[0] == "same":
        a, b = (by_id(_load_docs(Path(p))) for p in argv[1:])
        if a == b:
            print(f"same: {len(a)} resources")
            return 0
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                print(f"differs: {key}\n  {argv[1]}: {json.dumps(a.get(key))}\n  {argv[2]}: {json.dumps(b.get(key))}")
        return 1
    if len(argv) == 3 and argv[0] == "split":
        split(_load_docs(Path(argv[1])), Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "crds":
        problems = check_crds(Path(argv[1]), Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "schemas")
        for p in problems:
            print(p)
        if not problems:
            print(f"{argv[1]}: every custom resource matches its schema")
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RenderError as e:
        print(f"k8s_render: {e}", file=sys.stderr)
        sys.exit(1)
