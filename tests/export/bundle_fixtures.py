"""Shared helpers of the exporter tests (imported by conftest.py and the test modules).

Models are tiny (32×32, ndf = ngf = 8) so a whole export with full verification takes a few seconds. Their
weights are the release init plus seeded noise, so no layer is near-constant and parity is a real test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from training.checkpoint import save_checkpoint
from training.config import ModelConfig
from training.model import build_model

REPO = Path(__file__).resolve().parents[2]
TINY = {"image_size": 32, "ndf": 8, "ngf": 8}
# (id, ModelConfig overrides): every variant the trainer has, plus the affine head, plus one RGB model.
VARIANTS: dict[str, dict[str, Any]] = {
    "dae": {"variant": "dae"},
    "class-aware": {"variant": "class-aware", "class_names": tuple("abcdefghij")},
    "intrinsic-rgb": {"variant": "intrinsic", "channels": 3},
    "autoencoder": {"variant": "autoencoder"},
    "dae-affine": {"variant": "dae", "warp": "affine+integral"},
}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_checkpoint(path: Path, mnist_dir: Path, *, seed: int = 0, **overrides: Any) -> Path:
    """A tiny model of ``overrides`` with seeded, non-trivial weights, saved as the trainer saves one."""
    cfg = ModelConfig(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    train_config = {
        "data": "mnist",
        "data_dir": str(mnist_dir),
        "epochs": 2,
        "max_steps": None,
        "seed": 7,
        "limit": None,
        "command": "python -m training fit --data mnist --epochs 2",
    }
    metrics = {"test_reconstruction": 0.125, "test_total": 0.25, "test_broken": float("nan")}
    save_checkpoint(path, model, cfg, train_config=train_config, step=123, epoch=2, metrics=metrics)
    return path
