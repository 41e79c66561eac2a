"""The service never imports torch (nor training/export): proven in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import pkgutil, importlib, sys
import service
for m in pkgutil.walk_packages(service.__path__, "service."):
    if m.name != "service.__main__":
        importlib.import_module(m.name)
import service.__main__
from service.app import create_app
from service.config import Settings
create_app(Settings())
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training", "export", "torchvision"))
assert not bad, bad
print("ok", len([m for m in sys.modules if m.startswith("service")]))
"""


def test_importing_every_service_module_loads_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ") and int(done.stdout.split()[1]) >= 15


def test_the_service_dependencies_exclude_torch() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["cpu"] + project["optional-dependencies"]["gpu"]
    assert not [d for d in deps if d.lower().startswith(("torch", "onnx>", "onnx=", "onnxscript"))]
