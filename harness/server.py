"""Start the real service (``python -m service``) on a free loopback port, wait until it is ready, stop it.

    server = launch(bundle, Path("build/server.log"), max_batch=32, max_wait_ms=5)   # DAE_MAX_BATCH=32 ...
    server.url, server.port, server.pid; server.get("/metrics"); server.logs()
    code = server.stop()          # SIGTERM, as Docker and Kubernetes do; the exit code

The one launcher of the tests (tests/conftest.py's ``serve``/``launch`` fixtures), the benchmarks and the stress
runs; ``Process`` runs any other command the same way (the deployment checks run the image's entrypoint).
``DAE_*`` variables of the calling environment are dropped, so a developer's shell settings never leak into a
measurement; each keyword argument becomes one ``DAE_<NAME>``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.ports import free_port

REPO = Path(__file__).resolve().parents[1]
READY_PATH = "/v2/health/ready"


class StopTimeoutError(RuntimeError):
    """The process outlived its grace period after SIGTERM and was killed (what Docker would do)."""


class Process:
    """A child process whose stdout and stderr go to ``log``; ``stop`` sends SIGTERM and waits.

    ``group=True``: the child leads its own process group and ``stop`` signals the whole group, then kills
    whatever of it is left: for servers that fork workers of their own (LitServe's worker processes outlived
    their parent and spun on the benchmark's cores)."""

    def __init__(
        self, command: Sequence[str], *, env: Mapping[str, str], cwd: Path = REPO, log: Path, group: bool = False
    ) -> None:
        self.command = list(command)
        self.log = log
        self.group = group
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.command, cwd=cwd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT, start_new_session=group
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self, tail: int | None = None) -> str:
        text = self.log.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> float:
        """Seconds until ``ready()``; raises (with the log's tail) if the process exits or ``timeout`` passes."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command[-1]} exited with {self.proc.returncode}:\n{self.logs(4000)}")
            if ready():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"not {what} within {timeout:g} s:\n{self.logs(4000)}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code; killed and ``StopTimeoutError`` if it is still running after ``timeout``."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
            raise StopTimeoutError(f"still running {timeout:g} s after SIGTERM (killed):\n{self.logs(4000)}") from None
        finally:
            if self.group:  # the group's stragglers: nothing of it may outlive stop()
                self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        try:
            if self.group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Process:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.alive():
            self.stop()


class Server(Process):
    """``python -m service`` on ``127.0.0.1:port``."""

    def __init__(self, port: int, *, env: Mapping[str, str], log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__([sys.executable, "-m", "service"], env=env, log=log)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of a GET; plain urllib, so the harness needs no HTTP library."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def ready(self) -> bool:
        try:
            return self.get(READY_PATH, timeout=1.0)[0] == 200
        except OSError:  # refused while uvicorn binds; reset while it starts
            return False

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()


def service_env(port: int, bundle: Path | None, settings: Mapping[str, Any]) -> dict[str, str]:
    """This environment without its ``DAE_*``, plus host, port, bundle and ``DAE_<NAME>`` per setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAE_")}
    env.update({"DAE_HOST": "127.0.0.1", "DAE_PORT": str(port), "PYTHONPATH": str(REPO)})
    if bundle is not None:
        env["DAE_BUNDLE"] = str(Path(bundle).resolve())
    env.update({f"DAE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def launch(
    bundle: Path | None, log: Path, *, wait_ready: bool = True, ready_timeout: float = 90.0, **settings: Any
) -> Server:
    """The service on a free port, ready (unless ``wait_ready=False``); ``bundle=None`` leaves the default."""
    port = free_port()
    server = Server(port, env=service_env(port, bundle, settings), log=log)
    if wait_ready:
        try:
            server.wait_until(server.ready, ready_timeout)
        except RuntimeError:
            if server.alive():
                server.stop()
            raise
    return server
