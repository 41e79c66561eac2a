"""A reconstruction served over HTTP equals the trainer's PyTorch output for the same checkpoint (within 1e-4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.service_helpers import files, npz, png


@pytest.mark.parametrize("variant", ["dae", "class-aware", "intrinsic", "affine", "autoencoder"])
def test_served_outputs_match_pytorch(
    tiny: Callable[[str], Any], mnist_digits: tuple[np.ndarray, np.ndarray], variant: str
) -> None:
    import torch
    from PIL import Image

    from training.checkpoint import load_model

    model_info = tiny(variant)
    # 28x28 MNIST digits: the service resizes exactly as the manifest says; feed torch the same pixels.
    images = [mnist_digits[0][i] for i in range(3)]
    x = np.stack(
        [np.asarray(Image.fromarray(a).resize((32, 32), Image.Resampling.BILINEAR), np.float32) / 255 for a in images]
    )[:, None]
    model, _ = load_model(model_info.checkpoint)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    with TestClient(create_app(Settings(bundle=model_info.bundle, intra_op_threads=1, log_json=False))) as c:
        r = c.post("/reconstruct?format=npz&outputs=all", files=files(*(png(a) for a in images)))
        assert r.status_code == 200, r.text
    served = npz(r.content)
    pairs = {
        "reconstruction": out.reconstruction,
        "texture": out.texture,
        "grid": out.grid,
        "albedo": out.albedo,
        "shading": out.shading,
        "affine": out.affine,
        "appearance": out.latents.appearance,
    }
    if variant != "autoencoder":
        pairs["shape"] = out.latents.shape
    for name, want in pairs.items():
        if want is None:
            assert name not in served
            continue
        err = float(np.abs(served[name] - want.numpy()).max())
        assert err < 1e-4, (name, err)
