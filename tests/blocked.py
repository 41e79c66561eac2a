"""Run Python code in a fresh interpreter in which some top-level modules cannot be imported.

A meta-path finder refuses them, as if they were not installed: the check that ``client`` needs no server
package and ``bundle`` no torch, without building a second virtualenv. (The real thing, a fresh venv with only
``pip install '.[client]'``, is in docs/client.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
for mod in list(sys.modules):
    if mod.split(".")[0] in BLOCKED:
        del sys.modules[mod]
"""


def run_blocked(code: str, blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c BLOCKER + code`` in the repository root; the result (text output, never raises)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    program = _BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
