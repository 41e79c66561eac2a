"""Synthetic data with ground truth: known textures warped by known fold-free deformations.

Two datasets, both generated on the fly from ``np.random.default_rng([seed, split_id, index])`` (so item i is
the same on every machine, and any length costs nothing up front)::

    SyntheticWarpDataset("train", image_size=32)   # 10 base textures (label = which), random smooth warps
    SyntheticLitDataset("test", channels=3)        # 6 height fields, random light, two-colour albedo
    SyntheticLitDataset("test", scene="objects")   # the same light on a patterned object on black

Items: ``image``, ``label``, ``grid`` (2, N, N) and ``texture`` (C, N, N) with
``training.warp.warp(texture, grid) == image``; the lit set adds ``albedo`` (C, N, N), ``shading`` (1, N, N)
and ``light`` (3,) with ``texture == albedo * shading``. Grid conventions are those of training/warp.py:
channel 0 = x along the width, align_corners=True normalised coordinates.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from training.mnist import DataError
from training.warp import warp

SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1}
DEFAULT_LENGTH: dict[str, int] = {"train": 10000, "test": 2000}
MAX_STRENGTH = 0.45  # below 0.5 the Jacobian determinant stays >= 1 - 2 * strength > 0 (see below)
_EDGE = 0.06  # soft edge width of the texture shapes, normalised units: smooth at every image size

TEXTURE_NAMES: tuple[str, ...] = (
    "disc",
    "ring",
    "square",
    "cross",
    "triangle",
    "hbars",
    "vbars",
    "diamond",
    "blobs",
    "checker",
)
# One colour per texture for RGB (grayscale uses intensity 1): distinct hues, all bright.
_PALETTE = np.array(
    [
        [1.0, 0.2, 0.2],
        [0.2, 0.8, 0.2],
        [0.25, 0.4, 1.0],
        [1.0, 0.85, 0.1],
        [0.9, 0.3, 0.9],
        [0.1, 0.9, 0.9],
        [1.0, 0.55, 0.1],
        [0.6, 0.4, 1.0],
        [0.95, 0.95, 0.95],
        [0.5, 1.0, 0.5],
    ],
    dtype=np.float32,
)
HEIGHT_NAMES: tuple[str, ...] = ("dome", "bump", "ridge-x", "ridge-y", "ring", "twin-bumps")
AMBIENT = 0.1


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` each (N, N) float64 in [-1, 1]: X along the width (columns), Y along the height (rows)."""
    lin = np.linspace(-1.0, 1.0, size)
    Y, X = np.meshgrid(lin, lin, indexing="ij")
    return X, Y


def _inside(signed_dist: np.ndarray) -> np.ndarray:
    """Soft indicator of ``signed_dist < 0`` (a logistic edge of width ~_EDGE)."""
    return 1.0 / (1.0 + np.exp(np.clip(signed_dist / (_EDGE / 4), -50, 50)))


def base_texture(index: int, size: int) -> np.ndarray:
    """Texture ``index`` of :data:`TEXTURE_NAMES` as a float64 (N, N) mask in [0, 1], black background."""
    X, Y = _coords(size)
    R = np.hypot(X, Y)
    box = np.maximum(np.abs(X), np.abs(Y))
    name = TEXTURE_NAMES[index]
    if name == "disc":
        return _inside(R - 0.55)
    if name == "ring":
        return _inside(np.abs(R - 0.5) - 0.13)
    if name == "square":
        return _inside(box - 0.5)
    if name == "cross":
        bar_v = np.maximum(np.abs(X) - 0.16, np.abs(Y) - 0.62)
        bar_h = np.maximum(np.abs(Y) - 0.16, np.abs(X) - 0.62)
        return _inside(np.minimum(bar_v, bar_h))
    if name == "triangle":  # apex up (rows grow downwards): three half-planes
        slant = (-Y - 0.6) * 0.5 - 0.1
        d = np.maximum.reduce([Y - 0.5, slant + X * 0.866, slant - X * 0.866])
        return _inside(d)
    if name in ("hbars", "vbars"):
        t = Y if name == "hbars" else X
        stripes = np.abs(((t + 0.6) % 0.4) - 0.2) - 0.1  # 3 bars of width 0.2 with gaps of 0.2
        return _inside(np.maximum(stripes, box - 0.6))
    if name == "diamond":
        return _inside((np.abs(X) + np.abs(Y)) - 0.65)
    if name == "blobs":
        return np.maximum(
            np.exp(-((X + 0.35) ** 2 + (Y + 0.25) ** 2) / 0.06), np.exp(-((X - 0.35) ** 2 + (Y - 0.25) ** 2) / 0.06)
        )
    # checker: a 2x2 checkerboard inside a box
    return _inside(np.maximum(-X * Y * 4, box - 0.6))


def _fold_free_component(
    rng: np.random.Generator, along: np.ndarray, across: np.ndarray, strength: float
) -> np.ndarray:
    """``along + d``: d is 0 at ``along = ±1``, and ``|∂d/∂along|, |∂d/∂across| <= strength`` everywhere."""
    terms = [(k, j) for k in (1, 2, 3) for j in (0, 1, 2)]  # frequencies along / across
    amp = rng.normal(size=len(terms)) / np.array([k * k + j * j for k, j in terms])  # favour low frequency
    phase = rng.uniform(0, 2 * math.pi, size=len(terms))
    # Each term a·sin(kπ(t+1)/2)·cos(jπ(s+1)/2 + φ) has partial derivatives at most |a|·π/2·max(k, j):
    # scaling the sum of those bounds to `strength` (times a random share) bounds the whole field's.
    bound = sum(abs(a) * math.pi / 2 * max(k, j) for a, (k, j) in zip(amp, terms, strict=True))
    amp *= strength * rng.uniform(0.3, 1.0) / max(bound, 1e-12)
    d = np.zeros_like(along)
    for a, (k, j), ph in zip(amp, terms, phase, strict=True):
        d += a * np.sin(k * math.pi * (along + 1) / 2) * np.cos(j * math.pi * (across + 1) / 2 + ph)
    out: np.ndarray = along + d
    return out


def random_fold_free_grid(rng: np.random.Generator, size: int, strength: float = 0.4) -> np.ndarray:
    """A smooth random absolute sampling grid float32 ``(2, N, N)`` that cannot fold.

    Nonlinear part: x = X + dx(X, Y), y = Y + dy(X, Y), each a low-frequency sine series that is 0 on the
    border it moves along, with every partial derivative bounded by ``strength`` (< 0.5). So x is strictly
    increasing along the width and y along the height (what training/warp.py's integral warp can express),
    the Jacobian determinant is >= (1-s)² - s² = 1 - 2s > 0 (no folds at all), and the grid maps [-1, 1]
    onto [-1, 1]. Then a zoom-in (scale in [1 - s/2, 1]) with a shift keeps every point inside [-1, 1], so
    no sample ever reads the zero padding.
    """
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise DataError(f"deformation strength must be in [0, {MAX_STRENGTH}], got {strength}")
    if size < 2:
        raise DataError(f"grid size must be at least 2, got {size}")
    X, Y = _coords(size)
    gx = _fold_free_component(rng, X, Y, strength)
    gy = _fold_free_component(rng, Y, X, strength)
    scale = 1.0 - strength * rng.uniform(0.0, 0.5, size=2)
    shift = rng.uniform(-1.0, 1.0, size=2) * (1.0 - scale)
    return np.stack((gx * scale[0] + shift[0], gy * scale[1] + shift[1])).astype(np.float32)


def _warp_np(texture: np.ndarray, grid: np.ndarray) -> torch.Tensor:
    """The project's warp on one (C, N, N) texture; returns (C, N, N) float32."""
    out = warp(torch.from_numpy(texture)[None], torch.from_numpy(grid)[None])[0]
    return out.clamp_(0.0, 1.0)  # bilinear of [0, 1] values is in [0, 1]; this only trims float rounding


class _SyntheticBase(Dataset[dict[str, torch.Tensor]]):
    classes: list[str]

    def __init__(
        self,
        split: str,
        *,
        image_size: int,
        channels: int,
        length: int | None,
        limit: int | None,
        seed: int,
        strength: float,
    ) -> None:
        if split not in SPLIT_IDS:
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if image_size < 4:
            raise DataError(f"image_size must be at least 4, got {image_size}")
        if seed < 0:
            raise DataError(f"seed must be non-negative, got {seed}")
        if not 0.0 <= strength <= MAX_STRENGTH:
            raise DataError(f"deformation strength must be in [0, {MAX_STRENGTH}], got {strength}")
        n = DEFAULT_LENGTH[split] if length is None else length
        self.length = min(n, limit) if limit is not None else n
        if self.length < 1:
            raise DataError(f"dataset length must be positive, got {self.length}")
        self.split, self.image_size, self.channels = split, image_size, channels
        self.seed, self.strength = seed, strength

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length}")
        return np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])


class SyntheticWarpDataset(_SyntheticBase):
    """Item i: base texture ``i % 10`` (the label), warped by a random fold-free grid."""

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 32,
        channels: int = 1,
        length: int | None = None,
        limit: int | None = None,
        seed: int = 0,
        strength: float = 0.4,
    ) -> None:
        super().__init__(
            split, image_size=image_size, channels=channels, length=length, limit=limit, seed=seed, strength=strength
        )
        self.classes = list(TEXTURE_NAMES)
        colours = _PALETTE if channels == 3 else np.ones((len(TEXTURE_NAMES), 1), dtype=np.float32)
        self.textures = np.stack(
            [  # (K, C, N, N) float32, built once: they are fixed
                base_texture(k, image_size)[None].astype(np.float32) * colours[k][:, None, None]
                for k in range(len(TEXTURE_NAMES))
            ]
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        label = index % len(self.classes)
        grid = random_fold_free_grid(rng, self.image_size, self.strength)
        texture = self.textures[label]
        return {
            "image": _warp_np(texture, grid),
            "label": torch.tensor(label, dtype=torch.int64),
            "grid": torch.from_numpy(grid),
            "texture": torch.from_numpy(texture.copy()),
        }


def height_field(index: int, size: int) -> np.ndarray:
    """Height field ``index`` of :data:`HEIGHT_NAMES`, float64 (N, N), heights in normalised units."""
    X, Y = _coords(size)
    R2 = X**2 + Y**2
    name = HEIGHT_NAMES[index]
    h: np.ndarray
    if name == "dome":
        h = np.sqrt(np.clip(0.36 - R2, 0.0, None))
    elif name == "bump":
        h = 0.5 * np.exp(-R2 / 0.12)
    elif name == "ridge-x":
        h = 0.4 * np.exp(-(Y**2) / 0.05) * np.exp(-(X**2) / 0.5)
    elif name == "ridge-y":
        h = 0.4 * np.exp(-(X**2) / 0.05) * np.exp(-(Y**2) / 0.5)
    elif name == "ring":
        h = 0.3 * np.exp(-((np.sqrt(R2) - 0.5) ** 2) / 0.02)
    else:
        h = 0.35 * (np.exp(-((X + 0.4) ** 2 + Y**2) / 0.06) + np.exp(-((X - 0.4) ** 2 + Y**2) / 0.06))
    return h


def surface_normals(height: np.ndarray) -> np.ndarray:
    """Unit normals (3, N, N) of a height field sampled on [-1, 1]²: n ∝ (-∂h/∂x, -∂h/∂y, 1)."""
    step = 2.0 / (height.shape[-1] - 1)
    hy, hx = np.gradient(height, step)
    n = np.stack((-hx, -hy, np.ones_like(height)))
    unit: np.ndarray = n / np.linalg.norm(n, axis=0, keepdims=True)
    return unit


def random_light(rng: np.random.Generator, max_zenith_deg: float = 60.0) -> np.ndarray:
    """A unit light direction (3,) with z > 0, at most ``max_zenith_deg`` from the zenith."""
    zenith = math.radians(rng.uniform(0.0, max_zenith_deg))
    azimuth = rng.uniform(0.0, 2 * math.pi)
    return np.array([math.sin(zenith) * math.cos(azimuth), math.sin(zenith) * math.sin(azimuth), math.cos(zenith)])


def random_albedo(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """A two-colour gradient (C, N, N) in [0.3, 1]: ``a + (b - a) * t`` with ``t`` one gentle plane wave.

    Nine numbers per image (two colours and the wave's direction, frequency and phase), so an albedo code of
    about that size can hold it; a family with dozens of free numbers per image (independent waves in each
    channel) cannot be told apart from shading by any small code, and then no decomposition can beat the
    image itself. Along the gradient the *colour* changes, which a grey shading cannot do: that is what lets
    an intrinsic model tell albedo from shading at all.
    """
    X, Y = _coords(size)
    a, b = rng.uniform(0.3, 1.0, size=(2, channels))
    freq = rng.uniform(-math.pi / 2, math.pi / 2, size=2)  # at most half a period across the image
    t = (np.sin(freq[0] * X + freq[1] * Y + rng.uniform(0, 2 * math.pi)) + 1.0) / 2.0
    out: np.ndarray = a[:, None, None] + (b - a)[:, None, None] * t[None]
    return out


# The ``objects`` scene: per class (height field) a filled silhouette and a pattern painted on it, both from
# TEXTURE_NAMES; the sharp silhouette on black is what makes each image's warp visible (see SyntheticLitDataset).
OBJECT_SILHOUETTES: tuple[int, ...] = (0, 2, 3, 4, 7, 1)  # disc, square, cross, triangle, diamond, ring
OBJECT_PATTERNS: tuple[int, ...] = (1, 3, 4, 5, 6, 9)  # ring, cross, triangle, hbars, vbars, checker
SCENES: tuple[str, ...] = ("frame", "objects")


def random_colour(rng: np.random.Generator, channels: int) -> np.ndarray:
    """One random colour (C,) in [0.3, 1]: a random hue at saturation 0.7 (RGB), a random grey level (C = 1)."""
    if channels == 1:
        return np.array([rng.uniform(0.3, 1.0)])
    rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(), 0.7, 1.0))
    out: np.ndarray = rgb * 0.7 + 0.3
    return out


def object_masks(label: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``label``'s silhouette and pattern, each (1, N, N) in [0, 1]."""
    return base_texture(OBJECT_SILHOUETTES[label], size)[None], base_texture(OBJECT_PATTERNS[label], size)[None]


def object_albedo(rng: np.random.Generator, masks: tuple[np.ndarray, np.ndarray], channels: int) -> np.ndarray:
    """A class's silhouette (black around it; ``masks`` from :func:`object_masks`) painted in two random colours
    by the class's pattern: (C, N, N) in [0, 1]; two or six free numbers per image (two grey levels, two hues)."""
    silhouette, pattern = masks
    a, b = random_colour(rng, channels), random_colour(rng, channels)
    out: np.ndarray = silhouette * (a[:, None, None] + (b - a)[:, None, None] * pattern)
    return out


class SyntheticLitDataset(_SyntheticBase):
    """Item i: height field ``i % 6`` (the label) lit from a random direction, times a random albedo, warped.

    ``shading = AMBIENT + (1 - AMBIENT) * max(0, n·l)`` (Lambertian plus a small ambient term).

    Two scenes (``--data synthetic-lit`` / ``synthetic-lit-objects``):

    - ``frame``: the albedo is a gentle two-colour gradient over the whole frame (:func:`random_albedo`).
      Every pixel is lit, but a smooth warp of a smooth picture is nearly invisible: an image differs from
      its unwarped texture by a mean squared error of 0.0055 (0.054 on the synthetic warps), so an intrinsic
      DAE learns the decomposition and leaves its warp idle;
    - ``objects``: a silhouette per class on black, painted with a two-colour pattern per class
      (:func:`object_albedo`). The warp moves sharp edges (image vs unwarped texture: 0.019) and an
      intrinsic DAE learns it; on black the shading cannot be seen, so the intrinsic metrics count only the
      object's pixels (training/evaluate.py).
    """

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 32,
        channels: int = 1,
        length: int | None = None,
        limit: int | None = None,
        seed: int = 0,
        strength: float = 0.4,
        scene: str = "frame",
    ) -> None:
        super().__init__(
            split, image_size=image_size, channels=channels, length=length, limit=limit, seed=seed, strength=strength
        )
        if scene not in SCENES:
            raise DataError(f"scene must be one of {SCENES}, got {scene!r}")
        self.scene = scene
        self.classes = list(HEIGHT_NAMES)
        # Fixed per class, like the normals: made once, not per item.
        self.masks = [object_masks(k, image_size) for k in range(len(HEIGHT_NAMES))] if scene == "objects" else []
        self.normals = np.stack(  # (K, 3, N, N): the shapes are fixed, only the light varies
            [surface_normals(height_field(k, image_size)) for k in range(len(HEIGHT_NAMES))]
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        label = index % len(self.classes)
        light = random_light(rng)
        lambert = np.clip(np.tensordot(light, self.normals[label], axes=1), 0.0, None)  # (N, N)
        shading = (AMBIENT + (1.0 - AMBIENT) * lambert)[None].astype(np.float32)
        if self.scene == "objects":
            albedo = object_albedo(rng, self.masks[label], self.channels).astype(np.float32)
        else:
            albedo = random_albedo(rng, self.image_size, self.channels).astype(np.float32)
        texture = albedo * shading
        grid = random_fold_free_grid(rng, self.image_size, self.strength)
        return {
            "image": _warp_np(texture, grid),
            "label": torch.tensor(label, dtype=torch.int64),
            "grid": torch.from_numpy(grid),
            "texture": torch.from_numpy(texture),
            "albedo": torch.from_numpy(albedo),
            "shading": torch.from_numpy(shading),
            "light": torch.from_numpy(light.astype(np.float32)),
        }
