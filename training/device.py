"""Device choice and seeding, shared by the trainer, evaluation and benchmarks (no model code here)."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when there is one, else CPU; ``cuda`` without a device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["pick_device", "seed_everything"]
