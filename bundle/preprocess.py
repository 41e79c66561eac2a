"""The one definition of how a decoded picture becomes a model image (``manifest.preprocessing``).

It belongs to the bundle contract, next to the manifest: the service converts uploads with it and the trainer's
datasets (``training/data.py``) call it too, so a model sees at inference exactly what it saw in training.
Pillow and numpy only (no torch, no web framework).

Modes: 1/P/PA → RGB(A); 16-bit gray (I;16, I) → 8-bit (value / 257); CMYK, YCbCr → RGB; any alpha (RGBA, LA,
PA, P with transparency) is composited on black; then converted to ``color_mode`` (Pillow's L is ITU-R 601-2
luma) and resized to (N, N) with Pillow BILINEAR (non-square images are stretched).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
TO_RGB = ("1", "CMYK", "YCbCr")
ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class UnsupportedModeError(ValueError):
    """A Pillow mode this conversion does not handle."""


def normalise_mode(im: Image.Image) -> Image.Image:
    """Any supported mode → L or RGB, alpha composited on black."""
    mode = im.mode
    if mode in SIXTEEN_BIT:  # Pillow's own convert would clip at 255 instead of scaling
        arr = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in TO_RGB:
        im = im.convert("RGB" if mode != "1" else "L")
    elif mode not in ("L", "RGB", *ALPHA):
        raise UnsupportedModeError(f"image mode {mode} is not supported (use 8/16-bit grey, RGB, RGBA, palette, CMYK)")
    if im.mode in ALPHA:
        # Composite on black (not just drop alpha): transparent pixels carry arbitrary colour values.
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        im = Image.alpha_composite(black, rgba).convert("RGB")
    return im


def to_model_image(im: Image.Image, size: int, color_mode: str) -> Image.Image:
    """A decoded picture → the ``color_mode`` (L or RGB) image of ``size`` × ``size`` the encoder reads / 255."""
    im = normalise_mode(im).convert(color_mode)
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return im


def to_uint8_chw(im: Image.Image) -> np.ndarray:
    """An L or RGB image → a writable uint8 ``(C, H, W)`` array."""
    arr = np.array(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))
