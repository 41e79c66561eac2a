"""Client-test fixtures: a real uvicorn on loopback serving a tiny class-aware bundle, and MNIST digit files.

.venv/bin/python -m pytest tests/client -q
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.server import Server


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
def spawn(
    tmp_path: Path, launch: Callable[..., Server]
) -> Iterator[Callable[..., tuple[str, subprocess.Popen[bytes]]]]:
    """``spawn(bundle, **settings)`` → (url, process): ``python -m service`` started *without* waiting for ready
    (the retry tests need the moments before ready and after SIGTERM). Killed at the end of the test."""
    servers: list[Server] = []

    def start(bundle: Path, **settings: Any) -> tuple[str, subprocess.Popen[bytes]]:
        server = launch(bundle, tmp_path / f"server{len(servers)}.log", wait_ready=False, **settings)
        servers.append(server)
        return server.url, server.proc

    yield start
    for server in servers:
        if server.alive():
            server.proc.kill()
        server.proc.wait(10)
