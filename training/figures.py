"""Pictures of what a model learned: PNGs drawn by matplotlib's Agg renderer (no display, no pyplot state).

Two layers: *panels* run a model (eval mode, no grad, class-aware models decode with their predicted class
probabilities) and return the tensors to show; *savers* draw tensors and write one PNG. Images are
``(C, N, N)`` in [0, 1]; C is 1 (grey) or 3 (RGB).

Savers:
- :func:`save_sample_sheet`: input | texture [| albedo | shading] | deformation | reconstruction, one row
  per image (the trainer writes one per epoch to ``RUN/samples/``).
- :func:`save_image_grid`: labelled rows of images (per-class templates, interpolation and lighting strips).
- :func:`save_alignment_figure`: the lecture's hands-example layout: inputs, reconstructions, textures
  warped by the mean deformation, and the mean input next to the mean texture.

Panels: :func:`class_means` (per-class mean input and mean texture), :func:`interpolation_strip`
(one factor from A to B, the others held at A), :func:`alignment_panel`, :func:`intrinsic_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from training import warp as warp_ops
from training.model import Latents, Model, Output

CELL_INCHES = 0.9  # one image cell; 32x32 digits stay legible at dpi 100
GRID_LINES = 9  # lattice lines per direction drawn for a deformation field


def to_numpy_image(image: Tensor) -> np.ndarray:
    """``(C, N, N)`` tensor → ``(N, N)`` (grey) or ``(N, N, 3)`` float array clipped to [0, 1]."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (C, N, N) with C in (1, 3), got shape {tuple(image.shape)}")
    arr = image.detach().float().cpu().clamp(0.0, 1.0).numpy()
    return arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))


def _show(ax: Axes, image: Tensor) -> None:
    arr = to_numpy_image(image)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _blank(ax: Axes, text: str = "") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if text:
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, transform=ax.transAxes)


def draw_grid(ax: Axes, grid: Tensor, lines: int = GRID_LINES) -> None:
    """Draw the sampling grid ``(2, N, N)`` as a deformed lattice on a blank square canvas.

    Each curve is one row (or column) of output pixels, drawn where it reads the texture: the identity grid
    gives straight, evenly spaced lines; a warp bends them. Coordinates are texture pixels, y pointing down
    as in the images beside it.
    """
    if grid.dim() != 3 or grid.shape[0] != 2:
        raise ValueError(f"expected a grid (2, N, N), got shape {tuple(grid.shape)}")
    g = grid.detach().float().cpu().numpy()
    n = g.shape[-1]
    px = (g + 1.0) * 0.5 * (n - 1)  # normalised [-1, 1] → pixel centres [0, N-1] (align_corners=True)
    idx = np.unique(np.linspace(0, n - 1, min(lines, n)).round().astype(int))
    for i in idx:
        ax.plot(px[0, i, :], px[1, i, :], color="tab:blue", linewidth=0.6)  # row i of the output
        ax.plot(px[0, :, i], px[1, :, i], color="tab:red", linewidth=0.6)  # column i
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")


def save_sample_sheet(images: Tensor, out: Output, path: Path, max_rows: int = 8) -> None:
    """One row per image: input, texture, [albedo, shading,] deformation (warped lattice), reconstruction.

    ``images`` is the model's input batch ``(B, C, N, N)`` and ``out`` the model's output for it. A plain
    autoencoder has no deformation: its texture column is its output and its deformation cell says so.
    """
    if images.dim() != 4:
        raise ValueError(f"expected a batch (B, C, N, N), got shape {tuple(images.shape)}")
    if out.reconstruction.shape != images.shape:
        raise ValueError(f"output {tuple(out.reconstruction.shape)} does not match input {tuple(images.shape)}")
    rows = min(max_rows, images.shape[0])
    if rows < 1:
        raise ValueError("nothing to draw: empty batch")
    columns: list[str] = ["input", "texture"]
    if out.albedo is not None and out.shading is not None:
        columns += ["albedo", "shading"]
    columns += ["deformation", "reconstruction"]
    fig = Figure(figsize=(CELL_INCHES * len(columns), CELL_INCHES * rows + 0.3))
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for r in range(rows):
        cells = {
            "input": images[r],
            "texture": out.texture[r],
            "reconstruction": out.reconstruction[r],
            "albedo": out.albedo[r] if out.albedo is not None else None,
            "shading": out.shading[r] if out.shading is not None else None,
        }
        for c, name in enumerate(columns):
            ax = axes[r, c]
            if name == "deformation":
                if out.grid is None:
                    _blank(ax, "no warp")
                else:
                    draw_grid(ax, out.grid[r])
                continue
            image = cells[name]
            assert image is not None  # columns only list what the output has
            _show(ax, image)
        for c, name in enumerate(columns):
            axes[0, c].set_title(name, fontsize=7)
    fig.subplots_adjust(
        left=0.02, right=0.98, bottom=0.02, top=1.0 - 0.3 / (CELL_INCHES * rows + 0.3), wspace=0.08, hspace=0.08
    )
    _save(fig, path)


def save_image_grid(
    rows: Sequence[tuple[str, Tensor]], path: Path, *, title: str = "", column_labels: Sequence[str] = ()
) -> None:
    """Labelled rows of images: ``rows`` is ``[(label, images (K, C, N, N)), ...]``; lengths may differ.

    Used for per-class templates (one row per model, one column per class), interpolation strips (one row per
    pair, columns from A to B) and lighting strips.
    """
    if not rows:
        raise ValueError("nothing to draw: no rows")
    width = max(int(images.shape[0]) for _, images in rows)
    if width < 1:
        raise ValueError("nothing to draw: empty rows")
    label_inches = 1.4 if any(label for label, _ in rows) else 0.0
    top_inches = (0.3 if title else 0.0) + (0.2 if column_labels else 0.0) + 0.05
    fig_w, fig_h = label_inches + CELL_INCHES * width, CELL_INCHES * len(rows) + top_inches
    fig = Figure(figsize=(fig_w, fig_h))
    axes = fig.subplots(len(rows), width, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(width):
            if c < images.shape[0]:
                _show(axes[r, c], images[c])
            else:
                _blank(axes[r, c])
        if label:
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    for c, text in enumerate(column_labels[:width]):
        axes[0, c].set_title(text, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(
        left=label_inches / fig_w + 0.01,
        right=0.99,
        bottom=0.01,
        top=1.0 - top_inches / fig_h,
        wspace=0.06,
        hspace=0.06,
    )
    _save(fig, path)


def save_alignment_figure(panel: dict[str, Tensor], path: Path, *, title: str = "") -> None:
    """The lecture's alignment figure from :func:`alignment_panel`'s tensors.

    Rows: inputs, textures, textures warped by the mean deformation, reconstructions (``K`` images each); then the
    mean input, the mean texture and the mean texture warped by the mean deformation. A mean texture
    sharper than the mean input means the warp absorbed the shape variation.
    """
    needed = ("inputs", "reconstructions", "aligned", "mean_input", "mean_texture", "mean_aligned")
    missing = [k for k in needed if k not in panel]
    if missing:
        raise ValueError(f"alignment panel lacks {missing}")
    means = panel["mean_input"][None], panel["mean_texture"][None], panel["mean_aligned"][None]
    rows = [
        ("inputs", panel["inputs"]),
        *([("textures", panel["textures"])] if "textures" in panel else []),
        ("textures warped by\nmean deformation", panel["aligned"]),
        ("reconstructions", panel["reconstructions"]),
        ("mean input | mean texture |\nmean warped texture", torch.cat(means, dim=0)),
    ]
    save_image_grid(rows, path, title=title)


# -- panels: run the model, return what to draw -----------------------------------------------------
@torch.no_grad()
def class_means(model: Model, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class mean input and mean texture, each ``(K, C, N, N)``; a class with no image stays black."""
    model.eval()
    out = model(images)
    shape = (num_classes, *images.shape[1:])
    mean_in, mean_tex = torch.zeros(shape), torch.zeros(shape)
    for c in range(num_classes):
        sel = labels == c
        if bool(sel.any()):
            mean_in[c] = images[sel].mean(0).cpu()
            mean_tex[c] = out.texture[sel].mean(0).cpu()
    return mean_in, mean_tex


@torch.no_grad()
def interpolation_strip(model: Model, a: Tensor, b: Tensor, factor: str, steps: int = 8) -> Tensor:
    """Decode A with one latent factor moved linearly from A's to B's: ``(steps, C, N, N)``.

    ``factor`` is "shape", "appearance" or "shading" (intrinsic). Every other latent, and a class-aware
    model's class code, stays A's, so the strip shows what that factor alone controls.
    """
    if factor not in ("shape", "appearance", "shading"):
        raise ValueError(f"factor must be 'shape', 'appearance' or 'shading', got {factor!r}")
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    model.eval()
    la, lb = model.encode(a[None]), model.encode(b[None])
    za, zb = getattr(la, factor), getattr(lb, factor)
    if za is None or za.shape[1] == 0:
        raise ValueError(f"this {model.cfg.variant} model has no {factor} latent")
    code = model.class_code(la)
    t = torch.linspace(0.0, 1.0, steps, device=za.device)[:, None]
    fields = {"shape": la.shape, "appearance": la.appearance, "shading": la.shading, "class_logits": la.class_logits}
    fields = {k: None if v is None else v.expand(steps, -1) for k, v in fields.items()}
    fields[factor] = (1 - t) * za + t * zb
    lat = Latents(**fields)  # type: ignore[arg-type]  # shape/appearance are never None here
    return model.decode(lat, None if code is None else code.expand(steps, -1)).reconstruction.cpu()


@torch.no_grad()
def swap_grid(model: Model, appearance_from: Tensor, shape_from: Tensor) -> Tensor:
    """Decode every (appearance of row i, shape of column j): ``(R, K, C, N, N)``.

    A class-aware model decodes with the class code of the image that gives the shape, as ``/swap`` does.
    """
    model.eval()
    la, ls = model.encode(appearance_from), model.encode(shape_from)
    r, k = appearance_from.shape[0], shape_from.shape[0]
    code = model.class_code(ls)

    def rows(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.repeat_interleave(k, 0)

    def cols(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.repeat(r, 1)

    mixed = Latents(
        shape=ls.shape.repeat(r, 1),
        appearance=la.appearance.repeat_interleave(k, 0),
        shading=rows(la.shading),
        class_logits=cols(ls.class_logits),
    )
    out = model.decode(mixed, cols(code)).reconstruction
    return out.reshape(r, k, *out.shape[1:]).cpu()


def save_swap_figure(appearance_from: Tensor, shape_from: Tensor, grid: Tensor, path: Path, *, title: str = "") -> None:
    """Top row: the images that give the shape; left column: those that give the appearance; inside: swaps."""
    r, k = grid.shape[:2]
    fig = Figure(figsize=(1.1 * (k + 1), 1.1 * (r + 1) + 0.4))
    axes = fig.subplots(r + 1, k + 1, squeeze=False)
    _blank(axes[0][0], "appearance ↓\nshape →")
    for j in range(k):
        _show(axes[0][j + 1], shape_from[j])
    for i in range(r):
        _show(axes[i + 1][0], appearance_from[i])
        for j in range(k):
            _show(axes[i + 1][j + 1], grid[i, j])
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)


@torch.no_grad()
def alignment_panel(model: Model, images: Tensor) -> dict[str, Tensor]:
    """Inputs, reconstructions, textures warped by the batch-mean sampling grid, and the three means."""
    model.eval()
    out = model(images)
    if out.grid is None:
        raise ValueError("the alignment figure needs a model with a warp")
    mean_grid = out.grid.mean(0, keepdim=True).expand_as(out.grid)
    aligned = warp_ops.warp(out.texture, mean_grid)
    return {
        "inputs": images.cpu(),
        "textures": out.texture.cpu(),
        "reconstructions": out.reconstruction.cpu(),
        "aligned": aligned.cpu(),
        "mean_input": images.mean(0).cpu(),
        "mean_texture": out.texture.mean(0).cpu(),
        "mean_aligned": aligned.mean(0).cpu(),
    }


@torch.no_grad()
def intrinsic_rows(model: Model, images: Tensor) -> list[tuple[str, Tensor]]:
    """Rows input / albedo / shading / reconstruction for :func:`save_image_grid` (intrinsic models)."""
    model.eval()
    out = model(images)
    if out.albedo is None or out.shading is None:
        raise ValueError("intrinsic_rows needs an intrinsic model (albedo × shading)")
    shading = out.shading if images.shape[1] == 1 else out.shading.expand(-1, images.shape[1], -1, -1)
    return [
        ("input", images.cpu()),
        ("albedo", out.albedo.cpu()),
        ("shading", shading.cpu()),
        ("reconstruction", out.reconstruction.cpu()),
    ]
