"""Typed inputs and results of the client: images in (paths, bytes, PIL images, numpy arrays), numpy arrays and
PIL images out.

    enc = dae.encode("digit.png")        # Encoding: .code, .shape, .appearance (np.float32), .predicted_label
    res = dae.reconstruct("digit.png")   # Result: .arrays["texture"] (C, N, N), .images["warped_grid"] (PIL)
    res.save("out", "digit")             # out/digit_<output>.png for every image + out/digit.npz of the arrays
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ImageInput = str | os.PathLike[str] | bytes | Image.Image | np.ndarray


@dataclass(frozen=True)
class Encoding:
    """One image's latents (``/encode``). ``code`` goes back into ``decode`` / ``interpolate``."""

    index: int
    code: str
    shape: np.ndarray  # (S,) float32; empty for the plain autoencoder
    appearance: np.ndarray  # (A,) float32
    shading: np.ndarray | None = None  # intrinsic models
    class_probabilities: np.ndarray | None = None  # class-aware models
    predicted_class: int | None = None
    predicted_label: str | None = None


@dataclass(frozen=True)
class Result:
    """One decoded item (``/reconstruct``, ``/decode``, ``/swap``, one ``/interpolate`` frame).

    ``arrays``: exact float32 outputs (texture, reconstruction (C, N, N) in [0, 1]; grid, displacement (2, N, N);
    ...); ``images``: PIL images as the service rendered them (texture, reconstruction at N × N; the pictures
    warped_grid and flow upscaled by the server's DAE_VIZ_SCALE).
    """

    index: int
    code: str | None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    images: dict[str, Image.Image] = field(default_factory=dict)
    t: float | None = None  # interpolation: 0 at start, 1 at end

    @property
    def texture(self) -> np.ndarray:
        return self.arrays["texture"]

    @property
    def reconstruction(self) -> np.ndarray:
        return self.arrays["reconstruction"]

    def save(self, out_dir: str | os.PathLike[str], stem: str) -> list[Path]:
        """Write ``{stem}_{name}.png`` per image and ``{stem}.npz`` (the arrays); returns the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, img in self.images.items():
            path = out / f"{stem}_{name}.png"
            img.save(path)
            written.append(path)
        if self.arrays:
            path = out / f"{stem}.npz"
            np.savez(path, **self.arrays)  # type: ignore[arg-type]
            written.append(path)
        return written


def image_bytes(image: ImageInput) -> bytes:
    """Any accepted image input → bytes to upload (files and bytes are sent as they are; the server decodes)."""
    if isinstance(image, bytes | bytearray):
        if not image:
            raise ValueError("empty image bytes")
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"no such image file: {path}")
        return path.read_bytes()
    if isinstance(image, np.ndarray):
        image = array_to_image(image)
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"an image must be a path, bytes, a PIL image or a numpy array, not {type(image).__name__}")


def array_to_image(arr: np.ndarray) -> Image.Image:
    """(H, W) or (H, W, 1|3|4) uint8, or float in [0, 1] → PIL image."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(f"an image array must be (H, W) or (H, W, 1|3|4), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError("a non-uint8 image array must hold finite numbers in [0, 1]")
        arr = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(arr)


def _png(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def parse_encoding(item: Mapping[str, Any]) -> Encoding:
    def vec(key: str) -> np.ndarray | None:
        v = item.get(key)
        return None if v is None else np.asarray(v, dtype=np.float32)

    return Encoding(
        index=int(item["index"]),
        code=str(item["code"]),
        shape=np.asarray(item.get("shape", []), dtype=np.float32),
        appearance=np.asarray(item["appearance"], dtype=np.float32),
        shading=vec("shading"),
        class_probabilities=vec("class_probabilities"),
        predicted_class=item.get("predicted_class"),
        predicted_label=item.get("predicted_label"),
    )


def parse_result(item: Mapping[str, Any]) -> Result:
    """One JSON item (requested with ``arrays=both``): ``values`` → float32 arrays, ``png`` → PIL images."""
    arrays: dict[str, np.ndarray] = {}
    images: dict[str, Image.Image] = {}
    for name, entry in dict(item.get("outputs", {})).items():
        if "values" in entry:
            arrays[name] = np.asarray(entry["values"], dtype=np.float32)
        if "png" in entry:
            images[name] = _png(entry["png"])
    t = item.get("t")
    return Result(int(item["index"]), item.get("code"), arrays, images, None if t is None else float(t))
