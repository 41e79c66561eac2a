"""Fixtures for the exporter tests: real MNIST, tiny checkpoints of every variant, and their bundles.

Torch runs single-threaded inside the fixtures: on a shared 2-core machine that is ~3× faster than two
contending threads, and it is restored afterwards. Helpers live in ``bundle_fixtures.py``; ``mnist_dir``
(real MNIST: $MNIST_DIR, else ../shared/data/mnist) comes from the project-wide tests/conftest.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from export.bundle import export_bundle
from tests.export.bundle_fixtures import VARIANTS, one_thread, write_checkpoint


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Callable[..., Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    counter = iter(range(1_000_000))

    def make(*, seed: int = 0, **overrides: Any) -> Path:
        return write_checkpoint(root / f"ckpt{next(counter)}" / "last.pt", mnist_dir, seed=seed, **overrides)

    return make


@pytest.fixture(scope="session")
def exported(
    tmp_path_factory: pytest.TempPathFactory, make_checkpoint: Callable[..., Path], mnist_dir: Path
) -> Callable[[str], tuple[Path, Path, list[str]]]:
    """variant id -> (checkpoint, bundle dir, progress lines); each exported and verified once a session."""
    cache: dict[str, tuple[Path, Path, list[str]]] = {}

    def get(key: str) -> tuple[Path, Path, list[str]]:
        if key not in cache:
            ckpt = make_checkpoint(**VARIANTS[key])
            out = tmp_path_factory.mktemp("bundles") / key
            lines: list[str] = []
            with one_thread():
                export_bundle(ckpt, out, data_dir=mnist_dir, progress=lines.append)
            cache[key] = (ckpt, out, lines)
        return cache[key]

    return get


@pytest.fixture
def bundle_copy(tmp_path: Path, exported: Callable[[str], tuple[Path, Path, list[str]]]) -> Callable[[str], Path]:
    """A private copy of an exported bundle, safe to tamper with."""

    def copy(key: str) -> Path:
        dst = tmp_path / key
        shutil.copytree(exported(key)[1], dst)
        return dst

    return copy
