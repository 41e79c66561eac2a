"""The committed default bundle (models/mnist), served the way `make run` serves it; skipped until it exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.service.service_helpers import digit_png, files, npz


def test_default_bundle_serves_real_digits(
    default_bundle: Path, serve: Callable[..., Any], mnist_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    server = serve(None)  # no DAE_BUNDLE: the package-relative default must be found
    meta = httpx.get(f"{server.url}/v2").json()
    name = meta["models"][0]
    assert meta["models"] == [name, f"{name}-decoder"]  # the model and its decoders (OIP)
    m = httpx.get(f"{server.url}/v2/models/{name}").json()
    assert m["image_size"] == 32 and m["channels"] == 1 and m["variant"] in ("dae", "class-aware")
    blobs = [digit_png(mnist_digits, i) for i in range(16)]
    enc = httpx.post(f"{server.url}/encode", files=files(*blobs), timeout=60)
    assert enc.status_code == 200, enc.text
    items = enc.json()["items"]
    if m["variant"] == "class-aware":
        predicted = np.array([i["predicted_class"] for i in items])
        assert (predicted == mnist_digits[1][:16]).mean() >= 0.75  # a trained classifier head
    rec = npz(httpx.post(f"{server.url}/reconstruct?format=npz", files=files(*blobs), timeout=60).content)
    assert rec["reconstruction"].shape == (16, 1, 32, 32)
    from PIL import Image

    x = np.stack(
        [
            np.asarray(Image.fromarray(mnist_digits[0][i]).resize((32, 32), Image.Resampling.BILINEAR), np.float32)
            / 255
            for i in range(16)
        ]
    )
    assert float(np.mean((rec["reconstruction"][:, 0] - x) ** 2)) < 0.05  # a trained model reconstructs
    interp = npz(
        httpx.get(
            f"{server.url}/interpolate",
            params={"start": items[0]["code"], "end": items[1]["code"], "steps": 6, "format": "npz"},
        ).content
    )
    assert np.array_equal(interp["shape"][0], np.array(items[0]["shape"], np.float32))
    assert np.array_equal(interp["shape"][-1], np.array(items[1]["shape"], np.float32))
