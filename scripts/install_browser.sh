#!/usr/bin/env bash
# Installs what the browser tests (tests/service/e2e) need: Debian's chromium (+ fonts) and Playwright's Python package.
#   scripts/install_browser.sh            # root (or sudo) for apt; PY=.venv/bin/python by default
# `playwright install` is not used: its browser downloads are not reachable here; the tests launch
# /usr/bin/chromium through Playwright's executable_path instead.
set -euo pipefail
PY=${PY:-.venv/bin/python}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # fonts-dejavu-core: text in screenshots renders the same everywhere
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
"$CHROMIUM" --version

if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
    "$PY" -m pip install -q "playwright>=1.45"
fi
"$PY" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
