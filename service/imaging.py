"""Image bytes in, model arrays out, and pictures back: decoding under limits and the documented conversions.

Decoding (``decode_image``), in this order:
1. Formats: PNG, JPEG, WebP, GIF only (identified from the bytes; the declared type is not trusted).
2. Size: width × height above ``max_pixels`` → 413 ``image_too_large``, checked from the header before any
   pixel is decoded (decompression bombs never reach memory).
3. Animated images (GIF, APNG, WebP): the first frame.
4. Modes: 1/P/PA → RGB(A); 16-bit gray (I;16, I) → 8-bit (value / 257); CMYK, YCbCr → RGB;
   any alpha (RGBA, LA, PA, P with transparency) is composited on black; then converted to the manifest's
   ``color_mode`` (Pillow's L is ITU-R 601-2 luma). Other modes → 415 ``unsupported_image_mode``.
5. Geometry: any size is resized to (N, N) with Pillow BILINEAR (non-square images are stretched, exactly as
   ``manifest.preprocessing`` says), then uint8 / 255 → float32 (C, N, N).
Truncated files → 400 ``image_truncated``; anything else Pillow cannot read → 400 ``image_undecodable``.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from bundle.preprocess import UnsupportedModeError, to_model_image
from service.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError

# Our own pixel limit (checked from the header, before decoding) replaces Pillow's process-wide one, whose
# warning would otherwise fire from worker threads; Settings caps max_pixels below Pillow's own threshold.
Image.MAX_IMAGE_PIXELS = None

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
MEDIA_TYPES = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}


def decode_image(data: bytes, *, size: int, color_mode: str, max_pixels: int, what: str = "image") -> np.ndarray:
    """Encoded image bytes → float32 ``(C, size, size)`` in [0, 1]; a 4xx ServiceError on bad input."""
    if not data:
        raise BadRequestError(f"{what}: empty file", "image_empty")
    try:
        im: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError as e:
        raise BadRequestError(f"{what}: not a PNG, JPEG, WebP or GIF image", "image_undecodable") from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        raise BadRequestError(f"{what}: cannot read image header ({e})", "image_undecodable") from e
    w, h = im.size
    if w < 1 or h < 1:
        raise BadRequestError(f"{what}: image has no pixels ({w}x{h})", "image_undecodable")
    if w * h > max_pixels:
        raise PayloadTooLargeError(
            f"{what}: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}", "image_too_large"
        )
    try:
        if getattr(im, "is_animated", False):
            im.seek(0)
        im.load()
        im = to_model_image(im, size, color_mode)
    except UnsupportedModeError as e:
        raise UnsupportedMediaTypeError(f"{what}: {e}", "unsupported_image_mode") from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, MemoryError) as e:
        code = "image_truncated" if "truncated" in str(e).lower() else "image_undecodable"
        raise BadRequestError(f"{what}: cannot decode image ({e})", code) from e
    arr = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


# -- pictures ------------------------------------------------------------------------------------------------
def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Model image ``(C, H, W)`` float in [0, 1] → ``(H, W, 3)`` uint8 (gray repeated, so panels tile)."""
    a = np.clip(np.rint(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    hwc = a.transpose(1, 2, 0)
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def upscale(img: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour integer upscaling of ``(H, W, 3)``: pixels stay visible as pixels."""
    return img if k == 1 else np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def png_bytes(img: np.ndarray) -> bytes:
    """``(H, W, 3)`` or ``(C, H, W)`` float image → PNG bytes (model images: L for 1 channel, else RGB)."""
    if img.dtype != np.uint8:
        a = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        img = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def flow_colours(displacement: np.ndarray, scale: int) -> np.ndarray:
    """Displacement ``(2, N, N)`` → ``(N·k, N·k, 3)``: hue = direction, saturation = length.

    Full saturation is the largest displacement in the field, or one pixel (2 / (N - 1)) if all are smaller,
    so a near-identity warp stays near white instead of amplifying noise.
    """
    dx, dy = displacement[0].astype(np.float64), displacement[1].astype(np.float64)
    n = displacement.shape[-1]
    mag = np.hypot(dx, dy)
    ref = max(float(mag.max()), 2.0 / max(n - 1, 1))
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    sat = np.clip(mag / ref, 0.0, 1.0)
    rgb = _hsv_to_rgb(hue, sat, np.ones_like(hue))
    return upscale((rgb * 255).round().astype(np.uint8), scale)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((*h.shape, 3))
    for k, (r, g, b) in enumerate(table):
        m = i == k
        out[m] = np.stack((r[m], g[m], b[m]), axis=-1)
    return out


def warped_grid(grid: np.ndarray, background: np.ndarray, scale: int) -> np.ndarray:
    """The template's square grid as the warp draws it in image space, over the dimmed reconstruction.

    ``grid (2, N, N)`` holds, for every output pixel, the template point it samples; a line is drawn where
    that point lies on a template grid line (every N/8 template pixels): x lines orange, y lines blue.
    """
    n = grid.shape[-1]
    m = n * scale
    pos = np.linspace(0.0, n - 1.0, m)
    g = np.stack([_bilinear(grid[c].astype(np.float64), pos) for c in range(2)])  # (2, m, m)
    px = (g + 1.0) / 2.0 * (n - 1)  # template pixel coordinates
    spacing = max(2, n // 8)
    dist = np.abs(px - spacing * np.round(px / spacing)) * scale  # in output pixels (about)
    out = upscale(background, scale).astype(np.float64) * 0.5
    out[dist[0] < 0.75] = (255, 140, 0)
    out[dist[1] < 0.75] = (0, 160, 255)
    return out.round().astype(np.uint8)


def _bilinear(field: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Sample a 2-D field at the tensor grid ``pos × pos`` (pixel coordinates), bilinearly."""
    i0 = np.clip(np.floor(pos).astype(int), 0, field.shape[0] - 2)
    t = pos - i0
    rows = field[i0] * (1 - t)[:, None] + field[i0 + 1] * t[:, None]  # (m, N)
    out: np.ndarray = rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]
    return out


def sheet(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile ``(H, W, 3)`` panels: one list per row, with a ``gap``-pixel dark border between panels."""
    h = max(p.shape[0] for r in rows for p in r)
    w = max(p.shape[1] for r in rows for p in r)
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + gap) + gap, ncol * (w + gap) + gap, 3), 32, np.uint8)
    for i, r in enumerate(rows):
        for j, p in enumerate(r):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            out[y : y + p.shape[0], x : x + p.shape[1]] = p
    return out


def gif_bytes(frames: list[np.ndarray], frame_ms: int = 120) -> bytes:
    """An endlessly looping GIF animation of ``(H, W, 3)`` uint8 frames."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return buf.getvalue()
