"""A 600-step run on synthetic warps recovers the deformations: centred EPE (the template frame factored out)
well below the zero-deformation baseline. Real trainer, real synthetic data with ground truth.

    .venv/bin/python -m pytest tests/training/test_synthetic_recovery.py -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.checkpoint import load_model
from training.data import build_dataset
from training.evaluate import evaluate
from training.train import TrainConfig, fit

# Measured (seed 0, 500 test items; centred EPE / zero-deformation EPE over the whole grid, and where the image
# shows the warp): this config at 600 steps 0.55 (visible 0.43); at 300 steps 0.65 (visible 0.52): the
# foreground is recovered early, the black background (where any grid gives the same picture) only as the
# smoothness prior fills it in. Also at 300 steps: batch 128 0.64; smoothness 8.0 0.67; lr 5e-4 0.82;
# deformation lr x3 0.91; an 8-d appearance code 0.98 (the texture takes the shape); the MNIST recipe
# (appearance warm-up, smoothness 1.0) and class-aware variants 1.00 (the warp stays idle).
# Issue 12's target: 0.6 (a warp that does nothing scores 1.0).
SYNTHETIC_RUN: dict[str, Any] = {
    "data": "synthetic",
    "variant": "dae",
    "max_steps": 600,
    "smooth_weight": 4.0,
    "appearance_hold": 0.0,
    "appearance_ramp": 0.0,
}


@pytest.mark.slow
def test_six_hundred_steps_recover_the_deformations(tmp_path: Path) -> None:
    cfg = TrainConfig(**SYNTHETIC_RUN, test_limit=64, out=str(tmp_path / "run"), progress=False)
    model, _ = load_model(fit(cfg) / "last.pt")
    metrics = evaluate(model, build_dataset("synthetic", split="test", image_size=32, limit=500))
    zero = metrics["deformation_epe_zero_px"]
    assert zero > 1.0  # the test set really is deformed (pixels)
    assert metrics["deformation_epe_centred_px"] <= 0.6 * zero, metrics
    # where the image shows the warp, well below (the background is the smoothness prior's guess)
    assert metrics["deformation_epe_centred_visible_px"] <= 0.5 * metrics["deformation_epe_zero_visible_px"]
    assert metrics["warp_gain"] > 0.3  # the per-image warp, not a per-class one, makes the reconstruction
    assert metrics["texture_variance_ratio"] < 0.3  # one template per texture, bent into each image
