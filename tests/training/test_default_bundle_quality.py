"""The committed default bundle (models/mnist) separates shape from appearance: issue 12's targets, measured on
the exported ONNX graphs (what the service runs) over 1000 MNIST test digits.

    .venv/bin/python -m pytest tests/training/test_default_bundle_quality.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.bundle_model import BundleModel
from training.data import build_dataset
from training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "models" / "mnist"


@pytest.fixture(scope="module")
def metrics(mnist_dir: Path) -> dict[str, float]:
    model = BundleModel(BUNDLE)
    digits = build_dataset("mnist", split="test", image_size=model.cfg.image_size, data_dir=mnist_dir, limit=1000)
    return evaluate(model, digits)


def test_a_shape_swap_moves_the_digit_to_the_other_image(metrics: dict[str, float]) -> None:
    # decode(shape B, appearance A) is much closer to B's reconstruction than to A's (1 = the warp does nothing).
    assert metrics["swap_ratio"] <= 0.2


def test_textures_are_one_template_per_class(metrics: dict[str, float]) -> None:
    # Within-class texture variance is small beside the reconstructions' (1 = the texture holds the shape) ...
    assert metrics["texture_variance_ratio"] <= 0.2
    # ... and every class's template is its own digit (a model may not bend one template into several digits).
    assert metrics["template_purity"] == 1.0


def test_the_appearance_code_still_carries_something(metrics: dict[str, float]) -> None:
    assert metrics["appearance_share"] >= 0.03


def test_the_model_reconstructs_and_classifies(metrics: dict[str, float]) -> None:
    assert metrics["recon_mse"] < 0.5 * metrics["recon_mse_class_mean"]
    assert metrics["accuracy"] >= 0.97
    assert metrics["warp_gain"] > 0.3  # the per-image warp, not a per-class one, makes the reconstruction
