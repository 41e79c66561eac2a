"""Start ``python -m service`` on a free loopback port and wait until it is ready (stress runs only).

    server = launch(bundle, Path("build/stress/server.log"), queue_size=64)
    ...; code = server.stop()

The tests use tests/conftest.py's own factory; this copy keeps ``stress`` free of any import from tests/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Launched:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def launch(bundle: Path, log: Path, *, ready_timeout: float = 90.0, **settings: Any) -> Launched:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAE_")}
    env.update({"DAE_HOST": "127.0.0.1", "DAE_PORT": str(port), "DAE_BUNDLE": str(bundle),
                "DAE_INTRA_OP_THREADS": "1", "PYTHONPATH": str(REPO)})
    env.update({f"DAE_{k.upper()}": str(v) for k, v in settings.items()})
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=fh, stderr=fh)
    server = Launched(port, proc, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready within {ready_timeout} s")
