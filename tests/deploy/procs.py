"""Run what a container would run, on the host: the image's entrypoint with the image's and compose's environment.

`image_run(...)` turns (Dockerfile final stage + a compose service's resolved config) into a command line and an
environment for this machine, changing only what must change outside Docker:
  - `python` is this interpreter, and the repository is on PYTHONPATH (the image pip-installs the package);
  - container paths are mapped back to the files they come from (bind mounts, COPY lines);
  - DAE_HOST/DAE_PORT become a loopback address and a free port (compose publishes 0.0.0.0:8000 instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.server import Process

from . import dockerfile as df
from .conftest import REPO


@dataclass
class ImageRun:
    """The host equivalent of one container of a compose service."""

    command: list[str]
    healthcheck: list[str]
    env: dict[str, str]
    port: int
    grace_s: float  # compose's stop_grace_period

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _host_command(argv: list[str], stages: list[df.Stage]) -> list[str]:
    out = []
    for arg in argv:
        if arg in ("python", "python3"):
            out.append(sys.executable)
        elif arg.startswith("/") and (mapped := df.host_path(arg, stages, REPO)) is not None:
            out.append(str(mapped))
        else:
            out.append(arg)
    return out


def image_run(service: dict[str, Any], bundle: Path, home: Path, grace_s: float) -> ImageRun:
    """Command and environment of `service` (one entry of `docker compose config`'s services)."""
    build = service["build"]
    stages = df.stages(REPO / build["dockerfile"], build.get("args") or {})
    final = stages[-1]
    env = dict(final.env)
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items() if v is not None})
    mounts = {v["target"]: v["source"] for v in service.get("volumes", [])}
    if env.get("DAE_BUNDLE") not in mounts:
        raise AssertionError(f"DAE_BUNDLE={env.get('DAE_BUNDLE')} is not a mount point of the service")
    port = free_port()
    env.update(DAE_BUNDLE=str(bundle), DAE_HOST="127.0.0.1", DAE_PORT=str(port))
    # The image's PATH names its venv; here the interpreter is given by absolute path instead.
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=str(home), PYTHONPATH=str(REPO))
    return ImageRun(_host_command(final.command, stages), _host_command(final.healthcheck, stages), env, port, grace_s)


class Running(Process):
    """A started ImageRun (``harness.server.Process``); stop() sends SIGTERM like `docker stop` and returns the
    exit code, or raises ``StopTimeoutError`` after killing it once ``stop_grace_period`` has passed."""

    def __init__(self, run: ImageRun, cwd: Path, log: Path) -> None:
        self.run = run
        super().__init__(run.command, env=run.env, cwd=cwd, log=log)

    def healthy(self) -> bool:
        """The container's HEALTHCHECK command, with the container's environment."""
        done = subprocess.run(self.run.healthcheck, env=self.run.env, capture_output=True, timeout=10, check=False)
        return done.returncode == 0

    def wait_healthy(self, within_s: float) -> float:
        """Seconds until healthy; fails with the service's log if it exits or takes longer than within_s."""
        return self.wait_until(self.healthy, within_s, "healthy")

    def stop(self, timeout: float | None = None) -> int:
        return super().stop(self.run.grace_s if timeout is None else timeout)
