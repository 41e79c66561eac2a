"""Project-wide fixtures: real MNIST, tiny exported bundles per variant, and a real uvicorn on loopback.

    .venv/bin/python -m pytest tests/service -q

torch, training and export are imported lazily inside the bundle fixtures, so tests that need no bundle (and
the torch-free import test) never load them.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.server import Server
from harness.server import launch as launch_service

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "models" / "mnist"
TINY = dict(image_size=32, ndf=8, ngf=8, zdim=16, shape_dim=8, appearance_dim=4, shading_dim=3, num_classes=10)
VARIANTS: dict[str, dict[str, Any]] = {
    "dae": {"variant": "dae"},
    "class-aware": {"variant": "class-aware", "class_names": tuple(str(i) for i in range(10))},
    "intrinsic": {"variant": "intrinsic"},
    "autoencoder": {"variant": "autoencoder"},
    "affine": {"variant": "dae", "warp": "affine+integral"},
    "rgb": {"variant": "dae", "channels": 3},
}


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Real MNIST: $MNIST_DIR, else ../shared/data/mnist beside the checkout."""
    path = Path(os.environ.get("MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    if not any((path / f"t10k-images-idx3-ubyte{s}").exists() for s in ("", ".gz")):
        pytest.fail(f"real MNIST not found at {path}: set MNIST_DIR")
    return path


@pytest.fixture(scope="session")
def mnist_digits(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST test digits (uint8 (64, 28, 28)) and their labels."""

    def read(name: str, offset: int) -> np.ndarray:
        plain = mnist_dir / name
        raw = plain.read_bytes() if plain.exists() else gzip.decompress((mnist_dir / f"{name}.gz").read_bytes())
        return np.frombuffer(raw, np.uint8, offset=offset)

    images = read("t10k-images-idx3-ubyte", 16)[: 64 * 784].reshape(64, 28, 28)
    labels = read("t10k-labels-idx1-ubyte", 8)[:64]
    return images, labels


@pytest.fixture(scope="session")
def digit(mnist_digits: tuple[np.ndarray, np.ndarray]) -> bytes:
    """MNIST test digit 0 as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(mnist_digits[0][0]).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class TinyModel:
    variant: str
    checkpoint: Path
    bundle: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], TinyModel]:
    """variant key (see VARIANTS) → a tiny random-weight checkpoint and its exported bundle, made once."""
    cache: dict[str, TinyModel] = {}
    root = tmp_path_factory.mktemp("tiny")

    def get(key: str) -> TinyModel:
        if key not in cache:
            import torch

            from export.bundle import export_bundle
            from training.checkpoint import save_checkpoint
            from training.config import ModelConfig
            from training.model import build_model

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                torch.manual_seed(0)
                cfg = ModelConfig(**{**TINY, **VARIANTS[key]})
                ckpt = root / key / "last.pt"
                save_checkpoint(ckpt, build_model(cfg), cfg, train_config={"tiny": True})
                bundle = root / key / "bundle"
                export_bundle(ckpt, bundle, name=f"tiny-{key}", verify=False, progress=None)
            finally:
                torch.set_num_threads(threads)
            cache[key] = TinyModel(key, ckpt, bundle)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def default_bundle() -> Path:
    if not (DEFAULT_BUNDLE / "manifest.json").is_file():
        pytest.skip(f"the committed default bundle {DEFAULT_BUNDLE} is not in the repository yet")
    return DEFAULT_BUNDLE


# -- a real server (harness.server: the one launcher of tests, bench and stress) -----------------------------------


def start_server(bundle: Path | None, log: Path, *, wait_ready: bool = True, **settings: Any) -> Server:
    """``python -m service`` on a free loopback port, ready within 60 s; one intra-op thread unless told
    otherwise (the tests share two cores with each other)."""
    return launch_service(bundle, log, wait_ready=wait_ready, ready_timeout=60, **{"intra_op_threads": 1, **settings})


@pytest.fixture(scope="session")
def launch() -> Callable[..., Server]:
    """``start_server`` itself, for tests that manage one server's life (SIGTERM, failed start-up)."""
    return start_server


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Factory: ``serve(bundle, max_wait_ms=50, ...)`` → a ready Server; all are SIGTERMed at session end."""
    servers: list[Server] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def make(bundle: Path | None, **settings: Any) -> Server:
        server = start_server(bundle, logs / f"server{len(servers)}.log", **settings)
        servers.append(server)
        return server

    yield make
    for s in servers:
        if s.proc.poll() is None:
            s.stop()
