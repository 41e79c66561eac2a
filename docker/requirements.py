"""Print the pip requirements of pyproject.toml's core dependencies plus the named extras.

Used by docker/Dockerfile to install the dependency layer from pyproject.toml alone, before the code is
copied, so that editing the code does not reinstall onnxruntime:

    python docker/requirements.py pyproject.toml serve gpu > requirements.txt

Refuses `cpu` together with `gpu` (onnxruntime and onnxruntime-gpu overwrite each other's files), and
torch unless the `train` extra is asked for by name (docker/Dockerfile.train): the service image never
gets torch by accident through a core dependency.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

FORBIDDEN_TOGETHER = frozenset({"cpu", "gpu"})


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies followed by those of each extra, in pyproject order."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise ValueError(f"unknown extra(s) {unknown}; pyproject.toml defines {sorted(optional)}")
    if set(extras) >= FORBIDDEN_TOGETHER:
        raise ValueError("extras 'cpu' and 'gpu' are exclusive: onnxruntime and onnxruntime-gpu collide")
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs.extend(optional[extra])
    if "train" not in extras and any(r.replace(" ", "").lower().startswith("torch") for r in reqs):
        raise ValueError("torch must not be installed into the service image")
    return reqs


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python docker/requirements.py PYPROJECT EXTRA [EXTRA ...]", file=sys.stderr)
        return 2
    try:
        reqs = requirements(Path(argv[0]), argv[1:])
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"requirements.py: {exc}", file=sys.stderr)
        return 1
    print("\n".join(reqs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
