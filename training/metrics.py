"""Disentanglement metrics that a degenerate model cannot pass, on tensors already computed by a model.

Every function takes CPU tensors (``(n, C, N, N)`` images, ``(n, 2, N, N)`` grids, ``(n,)`` labels) and returns
floats; :mod:`training.evaluate` runs the model and calls these. Why each one, in the words of the design notes:

- a faint or blurry texture also has a low variance, so texture variance is read against the *reconstruction's*
  (:func:`texture_variance_ratio`), and reconstruction error beside the class-mean image (:func:`class_mean_mse`);
- the swap test is in pixel space, what a user of ``/swap`` sees (see :mod:`training.evaluate`);
- the template frame is only defined up to a global transform, so deformations are compared after removing each
  class's mean grid, or after the best linear frame (:func:`centred_epe`), beside the zero-deformation baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12


class ClassMoments:
    """Running per-class sums of x and x² (float64) for pixel variances without keeping the images."""

    def __init__(self) -> None:
        self.n: dict[int, int] = {}
        self.s: dict[int, Tensor] = {}
        self.ss: dict[int, Tensor] = {}

    @classmethod
    def of(cls, images: Tensor, labels: Tensor) -> ClassMoments:
        moments = cls()
        moments.add(images, labels)
        return moments

    def add(self, images: Tensor, labels: Tensor) -> None:
        x = images.detach().double().cpu()
        for c in labels.unique().tolist():
            sel = x[labels == c]
            self.n[c] = self.n.get(c, 0) + sel.shape[0]
            self.s[c] = self.s.get(c, torch.zeros_like(sel[0])) + sel.sum(0)
            self.ss[c] = self.ss.get(c, torch.zeros_like(sel[0])) + (sel * sel).sum(0)

    def pooled_second_moment(self) -> float:
        """``Σ_c n_c·E_c[x²] / Σ_c n_c``: the scale against which a variance is small or large."""
        n_all = sum(self.n.values())
        return sum(float((self.ss[c] / n).mean()) * n for c, n in self.n.items()) / max(n_all, 1)

    def class_means(self) -> tuple[list[int], Tensor]:
        classes = sorted(self.n)
        return classes, torch.stack([(self.s[c] / self.n[c]).flatten() for c in classes])

    def pooled_variance(self) -> float:
        """``Σ_c n_c·Var_c / Σ_c n_c`` over classes with ≥ 2 images; Var_c is the mean per-pixel variance."""
        total, weight = 0.0, 0
        for c, n in self.n.items():
            if n < 2:
                continue
            mean = self.s[c] / n
            var = (self.ss[c] / n - mean * mean).clamp_min(0.0).mean()
            total += n * float(var)
            weight += n
        if weight == 0:
            raise ValueError("within-class variances need at least two images of one class")
        return total / weight


def ratio(num: float, den: float) -> float:
    # Identical inputs have zero variance; textures that are then also identical count as perfectly aligned.
    return 0.0 if num <= EPS else num / max(den, EPS)


def alignment_ratio(textures: Tensor, inputs: Tensor, labels: Tensor) -> float:
    """Pooled within-class texture variance over input variance; 0 when both are 0."""
    return ratio(ClassMoments.of(textures, labels).pooled_variance(), ClassMoments.of(inputs, labels).pooled_variance())


def texture_variance_ratio(textures: Tensor, reconstructions: Tensor, labels: Tensor) -> float:
    """Within-class variance of the textures over that of the reconstructions: 0 = one template per class that
    the warp bends into every image; 1 = the textures vary as much as the outputs (the warp does nothing)."""
    return ratio(
        ClassMoments.of(textures, labels).pooled_variance(), ClassMoments.of(reconstructions, labels).pooled_variance()
    )


def purity(textures: ClassMoments, inputs: ClassMoments) -> float:
    """Share of classes whose mean texture correlates best (Pearson) with the mean input of its own class."""
    classes, t = textures.class_means()
    _, x = inputs.class_means()
    t = t - t.mean(1, keepdim=True)
    x = x - x.mean(1, keepdim=True)
    sim = (t / t.norm(dim=1, keepdim=True).clamp_min(EPS)) @ (x / x.norm(dim=1, keepdim=True).clamp_min(EPS)).T
    return float((sim.argmax(1) == torch.arange(len(classes))).double().mean())


def template_purity(textures: Tensor, inputs: Tensor, labels: Tensor) -> float:
    return purity(ClassMoments.of(textures, labels), ClassMoments.of(inputs, labels))


def class_mean_grids(grids: Tensor, labels: Tensor) -> Tensor:
    """Each item's class-mean grid ``(n, 2, N, N)``: the deformation a model without per-image shape would use."""
    out = torch.empty_like(grids)
    for c in labels.unique().tolist():
        sel = labels == c
        out[sel] = grids[sel].mean(0, keepdim=True)
    return out


def class_mean_mse(images: Tensor, labels: Tensor) -> float:
    """MSE of each image to its class's mean image: the reconstruction a model with no latent at all reaches."""
    means = torch.empty_like(images)
    for c in labels.unique().tolist():
        sel = labels == c
        means[sel] = images[sel].mean(0, keepdim=True)
    return float(((images - means) ** 2).mean())


def to_px(grid: Tensor) -> Tensor:
    """Normalised grid coordinates (align_corners=True) as pixels."""
    return grid * ((grid.shape[-1] - 1) / 2.0)


def epe_px(a: Tensor, b: Tensor) -> float:
    """Mean end-point distance in pixels between two ``(n, 2, N, N)`` grids or offsets (normalised units)."""
    if a.shape != b.shape:
        raise ValueError(f"grid {tuple(a.shape)} and ground truth {tuple(b.shape)} differ in shape")
    return float((to_px(a - b) ** 2).sum(1).sqrt().mean())


def visible(images: Tensor, radius: int = 2, level: float = 0.05) -> Tensor:
    """``(n, N, N)`` bool: pixels within ``radius`` of image content (any channel above ``level``). Only there
    does a deformation change the image: on a flat black background every grid gives the same picture, so no
    method can read the warp there from the image, and only the smoothness prior fills it in."""
    content = images.amax(1, keepdim=True) > level
    k = 2 * radius + 1
    return torch.nn.functional.max_pool2d(content.float(), k, 1, radius)[:, 0] > 0


def centred_epe(pred: Tensor, true: Tensor, labels: Tensor, seen: Tensor | None = None) -> dict[str, float]:
    """Deformation error with the template frame factored out, beside the zero-deformation baseline.

    ``deformation_epe_centred_px``: each grid minus its class mean (prediction and truth alike), compared.
    ``deformation_epe_frame_px``: as centred, after the best per-class linear map (2×2, least squares) that
    takes the predicted deviations into the true frame, so a template learnt zoomed or rotated is not punished;
    mapping *prediction → truth* keeps it honest: a constant prediction maps to 0 and scores the baseline.
    ``deformation_epe_zero_px``: the centred truth against 0 (a model whose grid ignores the image).
    With ``seen`` (``(n, N, N)`` bool, see :func:`visible`), ``deformation_epe_centred_visible_px`` and
    ``deformation_epe_zero_visible_px``: the same two over the pixels where the image shows the warp.
    """
    errs = {"centred": 0.0, "frame": 0.0, "zero": 0.0}
    vis = {"centred": 0.0, "zero": 0.0}
    n_all = labels.shape[0]
    n_seen = 0.0
    for c in labels.unique().tolist():
        sel = labels == c
        p = pred[sel] - pred[sel].mean(0, keepdim=True)
        t = true[sel] - true[sel].mean(0, keepdim=True)
        n = int(sel.sum())
        centred = (to_px(p - t) ** 2).sum(1).sqrt()  # (n, N, N) end-point distances, what epe_px averages
        zero = (to_px(t) ** 2).sum(1).sqrt()
        errs["centred"] += float(centred.mean()) * n
        errs["zero"] += float(zero.mean()) * n
        pv = p.permute(0, 2, 3, 1).reshape(-1, 2).double()
        tv = t.permute(0, 2, 3, 1).reshape(-1, 2).double()
        m = torch.linalg.lstsq(pv, tv).solution if float(pv.abs().sum()) > EPS else torch.zeros(2, 2).double()
        mapped = (pv @ m).float().reshape(p.shape[0], p.shape[2], p.shape[3], 2).permute(0, 3, 1, 2)
        errs["frame"] += epe_px(mapped, t) * n
        if seen is not None:
            mask = seen[sel]
            vis["centred"] += float(centred[mask].sum())
            vis["zero"] += float(zero[mask].sum())
            n_seen += float(mask.sum())
    out = {f"deformation_epe_{k}_px": v / n_all for k, v in errs.items()}
    if seen is not None and n_seen:
        out.update({f"deformation_epe_{k}_visible_px": v / n_seen for k, v in vis.items()})
    return out


def scale_invariant_mse(pred: Tensor, target: Tensor, where: Tensor | None = None) -> float:
    """MSE after the best per-image scale ``s = <p, t> / <p, p>`` is applied to ``pred``; with ``where`` (a 0/1
    mask broadcastable to the images) both the scale and the mean are over the masked pixels only."""
    p, t = pred.flatten(1), target.flatten(1)
    w = None if where is None else where.expand_as(target).flatten(1).to(pred.dtype)
    if w is not None:
        p, t = p * w, t * w
    s = (p * t).sum(1, keepdim=True) / (p * p).sum(1, keepdim=True).clamp_min(EPS)
    err = (s * p - t) ** 2
    return float(err.mean() if w is None else err.sum() / w.sum().clamp_min(EPS))


def same_class_partners(labels: Tensor, seed: int = 0) -> Tensor:
    """For each index another index with the same label (a random cycle per class); itself if alone."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.arange(labels.shape[0])
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.shape[0], generator=g)]
        partner[idx] = idx.roll(-1)
    return partner


def mse_per_item(a: Tensor, b: Tensor) -> Tensor:
    return ((a - b) ** 2).flatten(1).mean(1)


__all__ = [
    "ClassMoments",
    "alignment_ratio",
    "centred_epe",
    "class_mean_grids",
    "class_mean_mse",
    "epe_px",
    "mse_per_item",
    "purity",
    "ratio",
    "same_class_partners",
    "scale_invariant_mse",
    "template_purity",
    "texture_variance_ratio",
    "to_px",
    "visible",
]
