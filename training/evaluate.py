"""Metrics of a trained model on a test split, and the CLI that writes them as JSON.

Command::

    python -m training evaluate --checkpoint runs/dae/last.pt --data mnist --data-dir DIR --out metrics.json

API::

    metrics = evaluate(model, dataset, batch_size=256, device="cpu")   # dict[str, float]

Keys (a key is *absent* where the metric does not apply, so a table can print "n/a"):

- ``recon_mse``, ``recon_l1``: mean over pixels of the test reconstructions.
- ``alignment``: per-class pixel variance of the textures over that of the inputs, pooled over classes
  (``Σ_c n_c·Var_tex,c / Σ_c n_c·Var_in,c``); 0 = every texture of a class is the same template, 1 = the
  textures vary as much as the inputs (nothing absorbed by the warp). Also ``texture_variance`` and
  ``input_variance``, and ``alignment_scale_free``, the same ratio with each variance divided by the
  mean square of its images (so dimming the textures does not lower it). Needs a warp: absent for the
  plain autoencoder, whose "texture" is its output.
- ``template_purity``: the share of classes whose mean texture correlates best (Pearson, over pixels) with
  the mean input of its own class. Alignment cannot see a model that warps one template into several digits
  (each class is then tight); purity can: 1 when every class keeps a template of its own digit.
- swap consistency: each image A is paired with another image B of the same class; the model decodes
  (shape of A, appearance of B) and re-encodes it. ``swap_shape_error`` = MSE of the new shape latent to
  A's, ``swap_appearance_error`` = MSE of the new appearance latent to B's, and ``*_rel`` divides each by
  the MSE between A's and B's latents (0 = perfectly consistent, 1 = as far as the other image's code).
  A class-aware model decodes the swap with A's predicted class code; an intrinsic model with A's shading.
- ``accuracy``: class-aware models, argmax of the class head against the labels.
- synthetic data with ground truth: ``deformation_error_px`` (mean end-point error of the sampling grid in
  pixels) beside ``deformation_error_identity_px`` (the identity grid's, for scale); ``texture_mse``;
  with lighting: ``albedo_mse``, ``shading_mse`` and scale-invariant ``albedo_si_mse``, ``shading_si_mse``
  (albedo × shading is only defined up to a per-image scale).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from training.model import DeformingAutoencoder, Latents, Model, Output
from training.warp import identity_grid

_EPS = 1e-12


class _ClassMoments:
    """Running per-class sums of x and x² (float64) for pixel variances without keeping the images."""

    def __init__(self) -> None:
        self.n: dict[int, int] = {}
        self.s: dict[int, Tensor] = {}
        self.ss: dict[int, Tensor] = {}

    def add(self, images: Tensor, labels: Tensor) -> None:
        x = images.detach().double().cpu()
        for c in labels.unique().tolist():
            sel = x[labels == c]
            self.n[c] = self.n.get(c, 0) + sel.shape[0]
            self.s[c] = self.s.get(c, 0) + sel.sum(0)
            self.ss[c] = self.ss.get(c, 0) + (sel * sel).sum(0)

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
            raise ValueError("alignment needs at least two images of one class")
        return total / weight


def alignment_ratio(textures: Tensor, inputs: Tensor, labels: Tensor) -> float:
    """Pooled per-class texture variance over input variance (see the module docstring); 0 when both are 0."""
    tex, inp = _ClassMoments(), _ClassMoments()
    tex.add(textures, labels)
    inp.add(inputs, labels)
    return _ratio(tex.pooled_variance(), inp.pooled_variance())


def _purity(tex: _ClassMoments, inp: _ClassMoments) -> float:
    classes, t = tex.class_means()
    _, x = inp.class_means()
    t = t - t.mean(1, keepdim=True)
    x = x - x.mean(1, keepdim=True)
    sim = (t / t.norm(dim=1, keepdim=True).clamp_min(_EPS)) @ (x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)).T
    return float((sim.argmax(1) == torch.arange(len(classes))).double().mean())


def template_purity(textures: Tensor, inputs: Tensor, labels: Tensor) -> float:
    """Share of classes whose mean texture correlates best with the mean input of its own class."""
    tex, inp = _ClassMoments(), _ClassMoments()
    tex.add(textures, labels)
    inp.add(inputs, labels)
    return _purity(tex, inp)


def _ratio(num: float, den: float) -> float:
    # Identical inputs have zero variance; textures that are then also identical count as perfectly aligned.
    return 0.0 if num <= _EPS else num / max(den, _EPS)


def grid_error_px(grid: Tensor, target: Tensor) -> float:
    """Mean end-point distance, in pixels, between two sampling grids ``(B, 2, N, N)`` (normalised units)."""
    if grid.shape != target.shape:
        raise ValueError(f"grid {tuple(grid.shape)} and ground truth {tuple(target.shape)} differ in shape")
    n = grid.shape[-1]
    return float(((grid - target) ** 2).sum(1).sqrt().mean()) * (n - 1) / 2.0


def scale_invariant_mse(pred: Tensor, target: Tensor) -> float:
    """MSE after the best per-image scale ``s = <p, t> / <p, p>`` is applied to ``pred``."""
    p, t = pred.flatten(1), target.flatten(1)
    s = (p * t).sum(1, keepdim=True) / (p * p).sum(1, keepdim=True).clamp_min(_EPS)
    return float(((s * p - t) ** 2).mean())


def same_class_partners(labels: Tensor, seed: int = 0) -> Tensor:
    """For each index another index with the same label (a random cycle per class); itself if alone."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.arange(labels.shape[0])
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.shape[0], generator=g)]
        partner[idx] = idx.roll(-1)
    return partner


def _has_warp(model: Model) -> bool:
    return bool(model.cfg.has_warp)


def _index_latents(lat: Latents, idx: Tensor) -> Latents:
    return Latents(
        shape=lat.shape[idx], appearance=lat.appearance[idx],
        shading=None if lat.shading is None else lat.shading[idx],
        class_logits=None if lat.class_logits is None else lat.class_logits[idx],
    )


def _cat_latents(parts: list[Latents]) -> Latents:
    def cat(xs: list[Tensor | None]) -> Tensor | None:
        return None if xs[0] is None else torch.cat([x for x in xs if x is not None])

    return Latents(shape=torch.cat([p.shape for p in parts]),
                   appearance=torch.cat([p.appearance for p in parts]),
                   shading=cat([p.shading for p in parts]),
                   class_logits=cat([p.class_logits for p in parts]))


def _to(lat: Latents, device: torch.device | str) -> Latents:
    def mv(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    return Latents(shape=lat.shape.to(device), appearance=lat.appearance.to(device), shading=mv(lat.shading),
                   class_logits=mv(lat.class_logits))


def class_code(model: Model, latents: Latents) -> Tensor | None:
    """The inference class code: softmax of the predicted logits (class-aware), else ``None``."""
    return model.class_code(latents) if isinstance(model, DeformingAutoencoder) else None


def forward(model: Model, x: Tensor) -> Output:
    """Inference forward pass: class-aware models decode with their *predicted* class probabilities."""
    latents = model.encode(x)
    return model.decode(latents, class_code(model, latents))


def swap_consistency(model: Model, latents: Latents, partner: Tensor, *, batch_size: int = 256,
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """Decode (shape of i, appearance of partner[i]), re-encode, compare; see the module docstring."""
    keep = partner != torch.arange(partner.shape[0])
    a_idx, b_idx = keep.nonzero().flatten(), partner[keep]
    if a_idx.numel() == 0:
        raise ValueError("swap consistency needs at least two images of one class")
    sums = {"shape": 0.0, "appearance": 0.0, "shape_base": 0.0, "appearance_base": 0.0}
    for start in range(0, a_idx.numel(), batch_size):
        a, b = a_idx[start:start + batch_size], b_idx[start:start + batch_size]
        la, lb = _index_latents(latents, a), _index_latents(latents, b)
        swapped = Latents(shape=la.shape, appearance=lb.appearance, shading=la.shading,
                          class_logits=la.class_logits)
        swapped = _to(swapped, device)
        image = model.decode(swapped, class_code(model, swapped)).reconstruction
        again = model.encode(image)
        n = a.numel()
        sums["shape"] += float(((again.shape.cpu() - la.shape) ** 2).mean()) * n
        sums["appearance"] += float(((again.appearance.cpu() - lb.appearance) ** 2).mean()) * n
        sums["shape_base"] += float(((lb.shape - la.shape) ** 2).mean()) * n
        sums["appearance_base"] += float(((lb.appearance - la.appearance) ** 2).mean()) * n
    n_all = a_idx.numel()
    m = {k: v / n_all for k, v in sums.items()}
    return {
        "swap_shape_error": m["shape"], "swap_appearance_error": m["appearance"],
        "swap_shape_rel": _ratio(m["shape"], m["shape_base"]),
        "swap_appearance_rel": _ratio(m["appearance"], m["appearance_base"]),
    }


@torch.no_grad()
def evaluate(model: Model, dataset: Dataset[Any] | Sequence[dict[str, Tensor]], *, batch_size: int = 256,
             device: torch.device | str = "cpu", seed: int = 0) -> dict[str, float]:
    """All metrics of ``model`` on ``dataset`` (items: dicts with "image", "label" [, ground truth]).

    Deterministic: no shuffling; the swap pairs come from ``seed``. The model is put in eval mode.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("cannot evaluate on an empty dataset")
    model = model.to(device).eval()
    warp = _has_warp(model)
    tex_m, in_m = _ClassMoments(), _ClassMoments()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    latents: list[Latents] = []
    labels: list[Tensor] = []

    def add(key: str, value: float, n: int) -> None:
        sums[key] = sums.get(key, 0.0) + value * n
        counts[key] = counts.get(key, 0) + n

    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):  # type: ignore[arg-type]
        x = batch["image"].to(device)
        y = torch.as_tensor(batch["label"]).long()
        n = x.shape[0]
        out = forward(model, x)
        add("recon_mse", float(((out.reconstruction - x) ** 2).mean()), n)
        add("recon_l1", float((out.reconstruction - x).abs().mean()), n)
        latents.append(_to(out.latents, "cpu"))
        labels.append(y)
        if warp:
            tex_m.add(out.texture, y)
            in_m.add(x, y)
        if out.latents.class_logits is not None and bool((y >= 0).all()):
            add("accuracy", float((out.latents.class_logits.argmax(1).cpu() == y).float().mean()), n)
        if warp and "grid" in batch and out.grid is not None:
            gt = batch["grid"].to(device)
            add("deformation_error_px", grid_error_px(out.grid, gt), n)
            identity = identity_grid(gt.shape[-1], device=gt.device).expand_as(gt)
            add("deformation_error_identity_px", grid_error_px(identity, gt), n)
        if warp and "texture" in batch:
            add("texture_mse", float(((out.texture - batch["texture"].to(device)) ** 2).mean()), n)
        for key in ("albedo", "shading"):
            pred = getattr(out, key)
            if pred is not None and key in batch:
                gt = batch[key].to(device)
                add(f"{key}_mse", float(((pred - gt) ** 2).mean()), n)
                add(f"{key}_si_mse", scale_invariant_mse(pred, gt), n)

    metrics = {k: sums[k] / counts[k] for k in sums}
    metrics["images"] = float(counts["recon_mse"])
    if warp:
        all_labels = torch.cat(labels)
        all_latents = _cat_latents(latents)
        metrics["texture_variance"] = tex_m.pooled_variance()
        metrics["input_variance"] = in_m.pooled_variance()
        metrics["alignment"] = _ratio(metrics["texture_variance"], metrics["input_variance"])
        # Scale-free: variance as a share of the mean square, so a faint texture gains nothing by being faint.
        metrics["alignment_scale_free"] = _ratio(
            metrics["texture_variance"] / max(tex_m.pooled_second_moment(), _EPS),
            metrics["input_variance"] / max(in_m.pooled_second_moment(), _EPS))
        # Alignment alone cannot see a model that warps *one* template into several digits (every class then
        # has a tight texture): purity asks whether each class's mean texture still looks like that class.
        metrics["template_purity"] = _purity(tex_m, in_m)
        partner = same_class_partners(all_labels, seed)
        if bool((partner != torch.arange(partner.shape[0])).any()):
            metrics.update(
                swap_consistency(model, all_latents, partner, batch_size=batch_size, device=device))
    return metrics


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="RUN/last.pt written by `python -m training fit`")
    p.add_argument("--data", default=None, help="dataset name (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="MNIST IDX files or image folder (default: training's)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", default=None, help="write the metrics JSON here (default: stdout only)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (default: all)")
    p.add_argument("--batch-size", type=int, default=256, help="default: 256")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: cpu")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the swap pairs and of synthetic data (default: 0)")
    return p


def evaluate_checkpoint(checkpoint: Path, *, data: str | None = None, data_dir: str | None = None,
                        split: str = "test", limit: int | None = None, batch_size: int = 256,
                        device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Load ``checkpoint``, build its dataset (training's by default) and return ``{"metrics", ...}``."""
    from training.checkpoint import load_model
    from training.data import build_dataset
    from training.train import pick_device

    dev = pick_device(device)
    model, state = load_model(checkpoint, map_location=dev)
    tc: dict[str, Any] = state.get("train_config", {})
    data = data or tc.get("data", "mnist")
    data_dir = data_dir if data_dir is not None else tc.get("data_dir")
    dataset = build_dataset(data, split=split, image_size=model.cfg.image_size, channels=model.cfg.channels,
                            data_dir=data_dir, limit=limit, seed=seed)
    metrics = evaluate(model, dataset, batch_size=batch_size, device=dev, seed=seed)
    return {"checkpoint": str(checkpoint), "variant": model.cfg.variant, "warp": model.cfg.warp,
            "data": data, "split": split, "step": state.get("step"), "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    """``python -m training evaluate ...``: 0 on success, 2 on a user error (message on stderr)."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from training.data import DataError

    try:
        report = evaluate_checkpoint(Path(args.checkpoint), data=args.data, data_dir=args.data_dir,
                                     split=args.split, limit=args.limit, batch_size=args.batch_size,
                                     device=args.device, seed=args.seed)
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
