"""Fixtures for the deployment checks: the compose plugin, hadolint and nginx, and compose's resolved config.

The tools are installed by scripts/docker_check.sh (`make docker-check`), which also sets
DAE_DEPLOY_STRICT=1: then a missing tool is a failure, not a skip. Under a plain `make test` the checks run
when the tools are there (`.venv-deploy/bin`, or the paths in DAE_COMPOSE_BIN / DAE_HADOLINT_BIN /
DAE_NGINX_BIN) and skip, saying why, when they are not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY_VENV_BIN = REPO / ".venv-deploy" / "bin"
STRICT = os.environ.get("DAE_DEPLOY_STRICT") == "1"
# Every way the compose file is meant to be used: (label, extra CLI args). Naming a service activates its
# profile, which is how docs/deploy.md tells users to start each deployment.
COMPOSE_TARGETS: dict[str, list[str]] = {
    "gpu": [],
    "cpu": ["dae-cpu"],
    "scaled": ["lb"],
    "scaled-cpu": ["lb-cpu"],
    "train": ["train"],
    "train-cpu": ["train-cpu"],
}


def find_tool(env_var: str, name: str, *extra_dirs: Path) -> Path | None:
    """An executable: $env_var, else one of extra_dirs, else PATH."""
    explicit = os.environ.get(env_var)
    if explicit:
        return Path(explicit)
    for d in extra_dirs:
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return d / name
    found = shutil.which(name)
    return Path(found) if found else None


def require(tool: Path | None, what: str) -> Path:
    """Skip (or, under DAE_DEPLOY_STRICT=1, fail) when a tool is missing."""
    if tool is None or not tool.exists():
        msg = f"{what} not found; run `make docker-check` (scripts/docker_check.sh installs it)"
        if STRICT:
            pytest.fail(msg)
        pytest.skip(msg)
    return tool


@pytest.fixture(scope="session")
def compose_bin() -> Path:
    return require(find_tool("DAE_COMPOSE_BIN", "docker-compose", DEPLOY_VENV_BIN), "docker-compose plugin")


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    return require(find_tool("DAE_HADOLINT_BIN", "hadolint", DEPLOY_VENV_BIN), "hadolint")


@pytest.fixture(scope="session")
def nginx_bin() -> Path:
    return require(find_tool("DAE_NGINX_BIN", "nginx", Path("/usr/sbin")), "nginx")


def compose_env(tmp: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for compose: no stray DAE_* from the caller's shell, a private DOCKER_CONFIG."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAE_", "COMPOSE_"))}
    env["DOCKER_CONFIG"] = str(tmp)
    env.update(overrides or {})
    return env


@pytest.fixture(scope="session")
def compose_config(compose_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    """compose_config(label, **env) -> a target's resolved config (`docker compose config --format json`)."""
    tmp = tmp_path_factory.mktemp("docker-config")
    cache: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]] = {}

    def resolve(label: str, **env: str) -> dict[str, Any]:
        key = (label, tuple(sorted(env.items())))
        if key not in cache:
            cmd = [str(compose_bin), "-f", str(COMPOSE_FILE), "config", "--format", "json", *COMPOSE_TARGETS[label]]
            proc = subprocess.run(
                cmd, cwd=REPO, env=compose_env(tmp, env), capture_output=True, text=True, timeout=60, check=False
            )
            assert proc.returncode == 0, f"`{' '.join(cmd)}` failed:\n{proc.stderr}"
            cache[key] = json.loads(proc.stdout)
        return cache[key]

    return resolve


def duration_s(value: str | int | float) -> float:
    """Compose durations ('1m30s', '30s', '500ms', or seconds as a number) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = value[i : i + 2] if value[i : i + 2] in units else ch
        if unit not in units or not number:
            raise ValueError(f"not a duration: {value!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"duration without unit: {value!r}")
    return total


@pytest.fixture(scope="session")
def bundle(request: pytest.FixtureRequest) -> Path:
    """The bundled model (models/mnist), which compose mounts by default, else tests/conftest.py's tiny DAE."""
    shipped = REPO / "models" / "mnist"
    if (shipped / "manifest.json").is_file():
        return shipped
    try:
        return Path(request.getfixturevalue("tiny")("dae").bundle)
    except ImportError as exc:  # a serve-only venv has no torch to export with
        msg = f"models/mnist is not in the checkout and no bundle can be exported here ({exc})"
        if STRICT:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def digit_png(mnist_digits: tuple[Any, Any]) -> bytes:
    """One real MNIST test digit as PNG (tests/conftest.py reads MNIST_DIR, default ../shared/data/mnist)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mnist_digits[0][0]).save(buf, format="PNG")
    return buf.getvalue()
