from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """Real MNIST: $MNIST_DIR, else ../shared/data/mnist beside the checkout."""
    path = Path(os.environ.get("MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
    if not (path / "train-images-idx3-ubyte.gz").exists() and not (path / "train-images-idx3-ubyte").exists():
        pytest.fail(f"real MNIST not found at {path}: set MNIST_DIR or run `python -m training fetch-mnist --dest DIR`")
    return path
