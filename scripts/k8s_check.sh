#!/usr/bin/env bash
# Kubernetes manifests (deploy/k8s) rendered and validated without a cluster; scripts/docker_check.sh runs this
# (`make docker-check`, which .ci/run calls).
#
#   scripts/k8s_check.sh            # PY=.venv/bin/python for tests/deploy/test_k8s.py (set K8S_TESTS=0 to skip)
#
# 1. installs kubernetes-validate (PyPI, pinned; it brings PyYAML and jsonschema) into .venv-k8s/;
# 2. renders every kustomization (base, overlays/cpu, overlays/gpu, monitoring, kserve, examples/image-bundle) with
#    scripts/k8s_render.py into build/k8s/, and where kubectl is installed checks that `kubectl kustomize`
#    renders the same resources (the renderer implements only the kustomize features these files use);
# 3. `kubernetes-validate --strict` (unknown fields are errors) on every Kubernetes resource, the example
#    claim/loader pod, and each InferenceService predictor as a Pod (its containers, probes, volumes, security
#    context); the custom resources (InferenceService, ServiceMonitor) against deploy/k8s/schemas/*.json;
# 4. tests/deploy/test_k8s.py with DAE_DEPLOY_STRICT=1: probes, grace period vs drain, non-root, the HPA's
#    metric vs the prometheus-adapter rule vs service/metrics.py, the gpu overlay's device, and the containers'
#    environment run as a real service whose probe paths must answer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PY=${PY:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_VERSION=${K8S_VERSION:-1.37.0}   # the Kubernetes version validated against (kubernetes-validate -k)
K8S_VENV=$ROOT/.venv-k8s
OUT=$ROOT/build/k8s
TARGETS="base overlays/cpu overlays/gpu monitoring kserve examples/image-bundle"

say() { printf '\n== %s ==\n' "$*"; }
die() { printf 'k8s-check: FAILED: %s\n' "$*" >&2; exit 1; }

say "tools: kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI"
if [ "$("$K8S_VENV/bin/python" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" \
    != "$KUBERNETES_VALIDATE_VERSION" ]; then
    "$PYTHON" -m venv "$K8S_VENV"
    "$K8S_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
KPY=$K8S_VENV/bin/python
VALIDATE=$K8S_VENV/bin/kubernetes-validate
"$VALIDATE" --version

say "render (scripts/k8s_render.py)"
rm -rf "$OUT" && mkdir -p "$OUT"
for t in $TARGETS; do
    name=${t//\//-}
    "$KPY" scripts/k8s_render.py render "deploy/k8s/$t" > "$OUT/$name.yaml" || die "render $t"
    "$KPY" scripts/k8s_render.py split "$OUT/$name.yaml" "$OUT/$name"
    printf '  %-22s %s resources\n' "$t" "$(grep -c '^kind:' "$OUT/$name.yaml")"
done

say "kubectl kustomize renders the same"
if command -v kubectl >/dev/null 2>&1; then
    kubectl version --client 2>/dev/null | head -2
    for t in $TARGETS; do
        name=${t//\//-}
        kubectl kustomize "deploy/k8s/$t" > "$OUT/$name.kubectl.yaml" || die "kubectl kustomize $t"
        "$KPY" scripts/k8s_render.py same "$OUT/$name.yaml" "$OUT/$name.kubectl.yaml" || die "renderers differ: $t"
    done
else
    echo "no kubectl here: the Python renderer alone (its tests pin the merge rules it implements)"
fi

say "kubernetes-validate --strict (Kubernetes $K8S_VERSION)"
files=()
for t in $TARGETS; do
    name=${t//\//-}
    for part in core pods; do [ -s "$OUT/$name/$part.yaml" ] && files+=("$OUT/$name/$part.yaml"); done
done
files+=(deploy/k8s/examples/models-pvc.yaml)
"$VALIDATE" --strict -k "$K8S_VERSION" "${files[@]}" || die "kubernetes-validate"

say "custom resources against deploy/k8s/schemas"
for t in $TARGETS; do
    name=${t//\//-}
    [ -s "$OUT/$name/crds.yaml" ] || continue
    "$KPY" scripts/k8s_render.py crds "$OUT/$name/crds.yaml" || die "custom resources: $t"
done

if [ "${K8S_TESTS:-1}" = 1 ]; then
    say "tests/deploy/test_k8s.py (strict: a missing tool fails)"
    [ -x "$PY" ] || die "$PY not found; run \`make venv\` first"
    DAE_DEPLOY_STRICT=1 DAE_K8S_VALIDATE_BIN=$VALIDATE timeout 600 "$PY" -m pytest tests/deploy/test_k8s.py -q \
        -p no:cacheprovider || die "tests/deploy/test_k8s.py"
fi
say "k8s-check passed"
