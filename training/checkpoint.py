"""Checkpoints: weights + optimiser + the model config + the training config, so any consumer can rebuild.

Layout of ``RUN/last.pt`` (a plain dict, loadable with ``torch.load(..., weights_only=True)``)::

    {"format": 1, "model_config": {...}, "train_config": {...}, "model": state_dict,
     "optimizer": state_dict | None, "step": int, "epoch": int, "metrics": {...}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config import ModelConfig
from training.model import Model, build_model

CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    cfg: ModelConfig,
    *,
    train_config: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write atomically (tmp file + rename) so an interrupted save never leaves a truncated last.pt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": cfg.to_dict(),
        "train_config": train_config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "epoch": epoch,
        "metrics": metrics or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT or "model_config" not in state:
        raise ValueError(f"{path} is not a checkpoint of this project (format {state.get('format')!r})")
    return state


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Model, dict[str, Any]]:
    """Rebuild the model from its checkpoint, in eval mode, and return it with the raw checkpoint dict."""
    state = read_checkpoint(path, map_location)
    cfg = ModelConfig.from_dict(state["model_config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return model, state
