"""Client-test fixtures: a real uvicorn on loopback serving a tiny class-aware bundle, and MNIST digit files.

    .venv/bin/python -m pytest tests/client -q
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def client_server(tiny: Callable[[str], Any], serve: Callable[..., Any]) -> Any:
    return serve(tiny("class-aware").bundle, max_wait_ms=1)


@pytest.fixture(scope="session")
def digit_files(mnist_digits: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first 8 MNIST test digits as PNG files (digit_files[i] is test image i)."""
    root = tmp_path_factory.mktemp("digits")
    paths = []
    for i in range(8):
        path = root / f"digit{i}_label{int(mnist_digits[1][i])}.png"
        Image.fromarray(mnist_digits[0][i]).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def spawn(tmp_path: Path) -> Any:
    """``spawn(bundle, **settings)`` → (url, process): ``python -m service`` started *without* waiting for ready
    (the retry tests need the moments before ready and after SIGTERM). Killed at the end of the test."""
    import os
    import socket
    import subprocess
    import sys

    procs: list[subprocess.Popen[bytes]] = []
    repo = Path(__file__).resolve().parents[2]

    def start(bundle: Path, **settings: Any) -> tuple[str, subprocess.Popen[bytes]]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAE_")}
        env.update({"DAE_HOST": "127.0.0.1", "DAE_PORT": str(port), "DAE_BUNDLE": str(bundle),
                    "DAE_INTRA_OP_THREADS": "1", "PYTHONPATH": str(repo)})
        env.update({f"DAE_{k.upper()}": str(v) for k, v in settings.items()})
        log = (tmp_path / f"server{len(procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=repo, env=env, stdout=log, stderr=log)
        log.close()
        procs.append(proc)
        return f"http://127.0.0.1:{port}", proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
