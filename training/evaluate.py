"""Metrics of a trained model (a checkpoint, or an exported ONNX bundle) on a test split, and the CLI.

Commands::

    python -m training evaluate --checkpoint runs/dae/last.pt --data mnist --data-dir DIR --out metrics.json
    python -m training evaluate --bundle models/mnist --data mnist --data-dir DIR --limit 1000 --targets

API::

    metrics = evaluate(model, dataset, batch_size=256, device="cpu")   # dict[str, float]

Keys (a key is *absent* where the metric does not apply, so a table can print "n/a"). Pairs (A, B) are other
images of the same class (a random cycle per class, from ``seed``); a class-aware model decodes a swap with the
class code of the image that gives the shape.

- ``recon_mse``, ``recon_l1``; ``recon_mse_class_mean``: the same with every image replaced by its class's mean
  image (the floor a latent-free model reaches; a useful model is far below it).
- ``swap_ratio``: mean MSE(decode(shape B, appearance A), recon B) / mean MSE(…, recon A). Below 1 the shape
  latent moves the image towards B; a warp that does nothing scores about 1 (what a user of /swap sees).
- ``appearance_share``: mean MSE(decode(shape A, appearance B), recon A) / mean MSE(recon B, recon A): the share
  of the within-class difference that the appearance code carries (0 = appearance ignored).
- ``texture_variance_ratio``: within-class pixel variance of the textures over that of the reconstructions
  (0 = one template per class bent into every image; 1 = the texture holds the shape).
- ``warp_gain``: 1 − MSE(reconstruction) / MSE(texture warped by its class's mean grid), both to the input:
  what the per-image deformation adds over a per-class one (0 = the warp does nothing per image).
- ``alignment`` (texture variance over the *input's*), ``alignment_scale_free``, ``template_purity`` (share of
  classes whose mean texture correlates best with its own class's mean input) and the latent swap consistency
  ``swap_shape_rel`` / ``swap_appearance_rel`` (re-encode the swap; 0 = consistent, 1 = as far as the other code).
- ``accuracy``: class-aware models, argmax of the class head against the labels.
- synthetic data with ground truth: ``deformation_epe_centred_px`` / ``deformation_epe_frame_px`` beside
  ``deformation_epe_zero_px`` (see :func:`training.metrics.centred_epe`), both also over the pixels where the
  image shows the warp (``*_visible_px``: within 2 px of content; on the black background no method can see a
  warp, only the smoothness prior fills it in), the absolute ``deformation_error_px`` and
  ``deformation_error_identity_px`` (frame-dependent; for reference), ``texture_frame_mse`` (the learnt texture
  warped by its class-mean grid against the true texture warped by the true class-mean grid: the template up to
  its frame); with lighting ``albedo_si_mse`` / ``shading_si_mse`` (as seen in the image: each warped by its
  grid, predicted or true) beside the constant-shading baselines ``albedo_si_mse_flat`` (albedo = the image) and
  ``shading_si_mse_flat`` (shading = 1), and ``albedo_spread``
  (within-class variance of the predicted albedo over the true one's; 0 = every input gets the same albedo).

``--targets`` checks the issue-12 targets for a class-aware MNIST model and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from training import metrics as M
from training.model import Latents, Model
from training.warp import identity_grid, warp

# Bumped whenever a metric changes or is added: cached evaluations (reports/runner.py) of another version rerun.
METRICS_VERSION = 2
# Intrinsic metrics count a pixel when its true albedo is brighter than this in some channel (see intrinsic_metrics).
OBJECT_ALBEDO = 0.02

# Issue 12's targets (MNIST test, 32×32, class-aware DAE): (key, comparison, bound).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("swap_ratio", "<=", 0.2),
    ("texture_variance_ratio", "<=", 0.2),
    ("appearance_share", ">=", 0.03),
    ("recon_mse", "<=", 0.012),
    ("accuracy", ">=", 0.975),
    ("template_purity", ">=", 1.0),
)


@dataclass
class Collected:
    """One forward pass over a dataset, on the CPU."""

    images: Tensor
    labels: Tensor
    latents: Latents
    codes: Tensor | None
    textures: Tensor
    reconstructions: Tensor
    grids: Tensor | None
    albedo: Tensor | None
    shading: Tensor | None
    truth: dict[str, Tensor]


def _cat(xs: list[Tensor | None]) -> Tensor | None:
    return None if not xs or xs[0] is None else torch.cat([x for x in xs if x is not None])


def index_latents(lat: Latents, idx: Tensor) -> Latents:
    def pick(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[idx]

    return Latents(
        shape=lat.shape[idx],
        appearance=lat.appearance[idx],
        shading=pick(lat.shading),
        class_logits=pick(lat.class_logits),
    )


def latents_to(lat: Latents, device: torch.device | str) -> Latents:
    def mv(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(device)

    return Latents(
        shape=lat.shape.to(device),
        appearance=lat.appearance.to(device),
        shading=mv(lat.shading),
        class_logits=mv(lat.class_logits),
    )


@torch.no_grad()
def collect(
    model: Model, dataset: Dataset[Any] | Sequence[dict[str, Tensor]], *, batch_size: int, device: torch.device | str
) -> Collected:
    """Run ``model`` (inference: predicted class codes) over ``dataset``, keeping what the metrics need."""
    keep: dict[str, list[Any]] = {k: [] for k in ("x", "y", "lat", "code", "tex", "rec", "grid", "alb", "sha")}
    truth: dict[str, list[Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):  # type: ignore[arg-type]
        x = batch["image"].to(device)
        latents = model.encode(x)
        code = model.class_code(latents)
        out = model.decode(latents, code)
        keep["x"].append(batch["image"])
        keep["y"].append(torch.as_tensor(batch["label"]).long())
        keep["lat"].append(latents_to(latents, "cpu"))
        keep["code"].append(None if code is None else code.cpu())
        keep["tex"].append(out.texture.cpu())
        keep["rec"].append(out.reconstruction.cpu())
        keep["grid"].append(None if out.grid is None else out.grid.cpu())
        keep["alb"].append(None if out.albedo is None else out.albedo.cpu())
        keep["sha"].append(None if out.shading is None else out.shading.cpu())
        for key in ("grid", "texture", "albedo", "shading"):
            if key in batch:
                truth.setdefault(key, []).append(batch[key])
    lats: list[Latents] = keep["lat"]
    latents = Latents(
        shape=torch.cat([p.shape for p in lats]),
        appearance=torch.cat([p.appearance for p in lats]),
        shading=_cat([p.shading for p in lats]),
        class_logits=_cat([p.class_logits for p in lats]),
    )
    return Collected(
        images=torch.cat(keep["x"]),
        labels=torch.cat(keep["y"]),
        latents=latents,
        codes=_cat(keep["code"]),
        textures=torch.cat(keep["tex"]),
        reconstructions=torch.cat(keep["rec"]),
        grids=_cat(keep["grid"]),
        albedo=_cat(keep["alb"]),
        shading=_cat(keep["sha"]),
        truth={k: torch.cat(v) for k, v in truth.items()},
    )


@torch.no_grad()
def decode_mixed(
    model: Model,
    c: Collected,
    shape_from: Tensor,
    appearance_from: Tensor,
    *,
    batch_size: int,
    device: torch.device | str,
) -> Tensor:
    """Reconstructions decoded from the shape latent (and class code) of ``shape_from`` and the appearance
    (and shading) latents of ``appearance_from``, both index tensors."""
    images = []
    for start in range(0, shape_from.numel(), batch_size):
        s, a = shape_from[start : start + batch_size], appearance_from[start : start + batch_size]
        ls, la = index_latents(c.latents, s), index_latents(c.latents, a)
        mixed = Latents(shape=ls.shape, appearance=la.appearance, shading=la.shading, class_logits=ls.class_logits)
        code = None if c.codes is None else c.codes[s].to(device)
        images.append(model.decode(latents_to(mixed, device), code).reconstruction.cpu())
    return torch.cat(images)


def swap_metrics(
    model: Model, c: Collected, partner: Tensor, *, batch_size: int, device: torch.device | str
) -> dict[str, float]:
    """``swap_ratio``, ``appearance_share`` and the latent swap consistency (see the module docstring)."""
    keep = partner != torch.arange(partner.shape[0])
    a, b = keep.nonzero().flatten(), partner[keep]
    rec = c.reconstructions
    b_shape_a_app = decode_mixed(model, c, b, a, batch_size=batch_size, device=device)
    a_shape_b_app = decode_mixed(model, c, a, b, batch_size=batch_size, device=device)
    result = {
        "swap_ratio": M.ratio(
            float(M.mse_per_item(b_shape_a_app, rec[b]).mean()), float(M.mse_per_item(b_shape_a_app, rec[a]).mean())
        ),
        "appearance_share": M.ratio(
            float(M.mse_per_item(a_shape_b_app, rec[a]).mean()), float(M.mse_per_item(rec[b], rec[a]).mean())
        ),
    }
    # Latent consistency: re-encode (shape A, appearance B) and compare its latents with A's shape, B's appearance.
    again_shape, again_app = [], []
    for start in range(0, a.numel(), batch_size):
        lat = model.encode(a_shape_b_app[start : start + batch_size].to(device))
        again_shape.append(lat.shape.cpu())
        again_app.append(lat.appearance.cpu())
    la, lb = index_latents(c.latents, a), index_latents(c.latents, b)

    def mse(x: Tensor, y: Tensor) -> float:
        return float(((x - y) ** 2).mean())

    result["swap_shape_error"] = mse(torch.cat(again_shape), la.shape)
    result["swap_appearance_error"] = mse(torch.cat(again_app), lb.appearance)
    result["swap_shape_rel"] = M.ratio(result["swap_shape_error"], mse(lb.shape, la.shape))
    result["swap_appearance_rel"] = M.ratio(result["swap_appearance_error"], mse(lb.appearance, la.appearance))
    return result


def warp_metrics(
    model: Model, c: Collected, *, seed: int, batch_size: int, device: torch.device | str
) -> dict[str, float]:
    """Everything that needs a deformation: variances, purity, warp gain, swaps, ground-truth errors."""
    assert c.grids is not None
    x, y, tex, rec = c.images, c.labels, c.textures, c.reconstructions
    tex_m, in_m = M.ClassMoments.of(tex, y), M.ClassMoments.of(x, y)
    out: dict[str, float] = {
        "texture_variance": tex_m.pooled_variance(),
        "input_variance": in_m.pooled_variance(),
        "texture_variance_ratio": M.texture_variance_ratio(tex, rec, y),
        "template_purity": M.purity(tex_m, in_m),
    }
    out["alignment"] = M.ratio(out["texture_variance"], out["input_variance"])
    # Scale-free: variance as a share of the mean square, so a faint texture gains nothing by being faint.
    out["alignment_scale_free"] = M.ratio(
        out["texture_variance"] / max(tex_m.pooled_second_moment(), M.EPS),
        out["input_variance"] / max(in_m.pooled_second_moment(), M.EPS),
    )
    mean_grids = M.class_mean_grids(c.grids, y)
    at_mean = warp(tex, mean_grids)
    out["warp_gain"] = 1.0 - M.ratio(float(((rec - x) ** 2).mean()), float(((at_mean - x) ** 2).mean()))
    partner = M.same_class_partners(y, seed)
    if bool((partner != torch.arange(partner.shape[0])).any()):
        out.update(swap_metrics(model, c, partner, batch_size=batch_size, device=device))
    truth = c.truth
    if "grid" in truth:
        gt = truth["grid"]
        out.update(M.centred_epe(c.grids, gt, y, M.visible(c.images)))
        out["deformation_error_px"] = M.epe_px(c.grids, gt)
        out["deformation_error_identity_px"] = M.epe_px(identity_grid(gt.shape[-1]).expand_as(gt), gt)
        if "texture" in truth:
            out["texture_mse"] = float(((tex - truth["texture"]) ** 2).mean())
            true_at_mean = warp(truth["texture"], M.class_mean_grids(gt, y))
            out["texture_frame_mse"] = float(((at_mean - true_at_mean) ** 2).mean())
    return out


def intrinsic_metrics(c: Collected) -> dict[str, float]:
    """Albedo and shading compared **as seen in the image**: the prediction warped by the predicted grid against
    the truth warped by the true grid. In the template frame the comparison would depend on the frame the model
    happened to learn (it is only defined up to a transform, see ``centred_epe``), and the constant-shading
    baselines (albedo = the image, shading = 1) live in the image frame anyway."""
    out: dict[str, float] = {}
    truth = c.truth
    gt_grid = truth.get("grid")
    if "albedo" not in truth or "shading" not in truth:
        return out
    # Only where the object is (true albedo above black): on a black albedo the shading cannot be seen at all,
    # and there a dark albedo and a dark shading give the same image. On a set whose albedo covers the whole
    # frame this is every pixel.
    seen_truth = {k: warp(truth[k], gt_grid) if gt_grid is not None else truth[k] for k in ("albedo", "shading")}
    where = seen_truth["albedo"].amax(1, keepdim=True) > OBJECT_ALBEDO
    for key, pred in (("albedo", c.albedo), ("shading", c.shading)):
        if pred is None:
            continue
        seen = warp(pred, c.grids) if c.grids is not None else pred
        gt = seen_truth[key]
        w = where.expand_as(gt)
        out[f"{key}_mse"] = float(((seen - gt) ** 2)[w].mean())
        out[f"{key}_si_mse"] = M.scale_invariant_mse(seen, gt, where)
        if key == "albedo":
            # Constant shading: the albedo is the image itself and the shading is flat.
            out["albedo_si_mse_flat"] = M.scale_invariant_mse(c.images, gt, where)
            out["albedo_spread"] = M.ratio(
                M.ClassMoments.of(pred, c.labels).pooled_variance(),
                M.ClassMoments.of(truth["albedo"], c.labels).pooled_variance(),
            )
        else:
            out["shading_si_mse_flat"] = M.scale_invariant_mse(torch.ones_like(gt), gt, where)
    return out


@torch.no_grad()
def evaluate(
    model: Model,
    dataset: Dataset[Any] | Sequence[dict[str, Tensor]],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """All metrics of ``model`` on ``dataset`` (items: dicts with "image", "label" [, ground truth]).

    Deterministic: no shuffling; the swap pairs come from ``seed``. The model is put in eval mode.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("cannot evaluate on an empty dataset")
    model = model.to(device).eval()
    c = collect(model, dataset, batch_size=batch_size, device=device)
    x, y = c.images, c.labels
    metrics: dict[str, float] = {
        "images": float(x.shape[0]),
        "recon_mse": float(((c.reconstructions - x) ** 2).mean()),
        "recon_l1": float((c.reconstructions - x).abs().mean()),
    }
    labelled = bool((y >= 0).all())
    if labelled:
        metrics["recon_mse_class_mean"] = M.class_mean_mse(x, y)
    if c.latents.class_logits is not None and labelled:
        metrics["accuracy"] = float((c.latents.class_logits.argmax(1) == y).float().mean())
    if model.cfg.has_warp:
        metrics.update(warp_metrics(model, c, seed=seed, batch_size=batch_size, device=device))
    metrics.update(intrinsic_metrics(c))
    return metrics


def check_targets(metrics: dict[str, float]) -> list[str]:
    """The issue-12 targets this model misses (an empty list: all met); a missing key counts as missed."""
    missed = []
    for key, op, bound in TARGETS:
        value = metrics.get(key)
        ok = value is not None and (value <= bound if op == "<=" else value >= bound)
        if not ok:
            missed.append(f"{key} = {value} (target {op} {bound})")
    return missed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="RUN/last.pt written by `python -m training fit`")
    what.add_argument("--bundle", help="an exported bundle directory (models/mnist): evaluates the ONNX graphs")
    p.add_argument("--data", default=None, help="dataset name (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="MNIST IDX files or image folder (default: training's)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", default=None, help="write the metrics JSON here (default: stdout only)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (default: all)")
    p.add_argument("--batch-size", type=int, default=256, help="default: 256")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="default: cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the swap pairs and of synthetic data (default: 0)")
    p.add_argument(
        "--targets",
        action="store_true",
        help="check the class-aware MNIST targets (issue 12); exit 1 when one is missed",
    )
    return p


def _load(checkpoint: Path | None, bundle: Path | None, device: torch.device) -> tuple[Model, dict[str, Any]]:
    """The model and what is known of its training (``data``, ``data_dir``, ``step``)."""
    if bundle is not None:
        from training.bundle_model import BundleModel

        model = BundleModel(bundle)
        prov = model.manifest.provenance
        return model, {"data": prov.data, "step": prov.steps, "source": str(bundle)}
    assert checkpoint is not None
    from training.checkpoint import load_model

    torch_model, state = load_model(checkpoint, map_location=device)
    tc: dict[str, Any] = state.get("train_config", {})
    return torch_model, {
        "data": tc.get("data"),
        "data_dir": tc.get("data_dir"),
        "step": state.get("step"),
        "source": str(checkpoint),
    }


def evaluate_checkpoint(
    checkpoint: Path | None = None,
    *,
    bundle: Path | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Load a checkpoint or a bundle, build its dataset (training's by default), return ``{"metrics", ...}``."""
    from training.data import build_dataset
    from training.device import pick_device

    dev = pick_device(device)
    model, info = _load(checkpoint, bundle, dev)
    data = data or info.get("data") or "mnist"
    data_dir = data_dir if data_dir is not None else info.get("data_dir")
    dataset = build_dataset(
        data,
        split=split,
        image_size=model.cfg.image_size,
        channels=model.cfg.channels,
        data_dir=data_dir,
        limit=limit,
        seed=seed,
    )
    metrics = evaluate(model, dataset, batch_size=batch_size, device=dev, seed=seed)
    key = "bundle" if bundle is not None else "checkpoint"
    return {
        key: info["source"],
        "variant": model.cfg.variant,
        "warp": model.cfg.warp,
        "data": data,
        "split": split,
        "step": info.get("step"),
        "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m training evaluate ...``: 0 on success, 1 on a missed target, 2 on a user error."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from bundle.manifest import BundleError
    from training.data import DataError

    try:
        report = evaluate_checkpoint(
            Path(args.checkpoint) if args.checkpoint else None,
            bundle=Path(args.bundle) if args.bundle else None,
            data=args.data,
            data_dir=args.data_dir,
            split=args.split,
            limit=args.limit,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
        )
    except (DataError, BundleError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.targets:
        report["targets_missed"] = check_targets(report["metrics"])
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    if args.targets:
        for line in report["targets_missed"]:
            print(f"target missed: {line}", file=sys.stderr)
        return 1 if report["targets_missed"] else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
