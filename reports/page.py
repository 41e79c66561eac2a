"""docs/results.md and docs/results.json from the evaluated runs: tables (mean ± sd over seeds), the recipe
search, the targets, the lecture's claim in words computed from the numbers, and the figures."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from reports.plan import Run
from training.evaluate import TARGETS

MAIN = (
    ("recon_mse", "recon MSE ↓"),
    ("recon_mse_class_mean", "class-mean image MSE"),
    ("accuracy", "class accuracy ↑"),
    ("swap_ratio", "swap ratio ↓"),
    ("texture_variance_ratio", "texture var. ratio ↓"),
    ("appearance_share", "appearance share"),
    ("warp_gain", "warp gain ↑"),
    ("template_purity", "template purity ↑"),
    ("alignment", "alignment ↓"),
)
SYNTHETIC = (
    ("deformation_epe_centred_px", "centred EPE (px) ↓"),
    ("deformation_epe_frame_px", "frame EPE (px) ↓"),
    ("deformation_epe_zero_px", "zero-deformation EPE (px)"),
    ("deformation_epe_centred_visible_px", "centred EPE where visible (px) ↓"),
    ("deformation_epe_zero_visible_px", "zero-deformation EPE where visible (px)"),
    ("deformation_error_px", "absolute EPE (px)"),
    ("deformation_error_identity_px", "identity EPE (px)"),
    ("texture_frame_mse", "texture MSE up to frame"),
    ("recon_mse", "recon MSE"),
)
INTRINSIC = (
    ("albedo_si_mse", "albedo SI-MSE ↓"),
    ("albedo_si_mse_flat", "flat-shading albedo SI-MSE"),
    ("shading_si_mse", "shading SI-MSE ↓"),
    ("shading_si_mse_flat", "flat shading SI-MSE"),
    ("albedo_spread", "albedo spread ↑"),
    ("deformation_epe_centred_px", "centred EPE (px) ↓"),
    ("deformation_epe_zero_px", "zero-deformation EPE (px)"),
    ("recon_mse", "recon MSE"),
)
# Rows of the quick experiment filed with issue 12 (a modified copy of the trainer, 1 thread, class-aware,
# 2-d appearance, same-class pairs of 1000 test digits), quoted so the search table shows where the recipe came
# from; our own screen runs follow them.
ISSUE_ROWS = (
    ("TV weight 1.0 in the old units (4× the release at 32×32)", 937, "0.0234", "0.970", "1.54", "0.80", "0.61"),
    ("TV 0.25 old units (= 1.0 now, the release's strength)", 937, "0.0208", "0.962", "0.51", "0.55", "0.33"),
    ("+ appearance held at 0 for the first half", 937, "0.0183", "0.968", "0.09", "0.15", "0.05"),
    ("same, 2 epochs (appearance off for the first)", 1874, "0.0117", "0.975", "0.11", "0.15", "0.07"),
    ("same, 2 epochs, seed 1", 1874, "0.0121", "0.978", "0.07", "0.10", "–"),
    ("1 epoch, class-loss weight 0.05", 937, "0.0249", "0.984", "0.05", "0.07", "0.03"),
)


def stats(run: Run, key: str) -> tuple[float, float] | None:
    values = [m[key] for m in run.metrics.values() if key in m and math.isfinite(m[key])]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def cell(run: Run, key: str) -> str:
    s = stats(run, key)
    if s is None:
        return "n/a"
    mean, sd = s
    return f"{mean:.4g} ± {sd:.2g}" if len(run.metrics) > 1 else f"{mean:.4g}"


def table(runs: list[Run], columns: tuple[tuple[str, str], ...], *, steps: bool = True) -> list[str]:
    head = ["model", "seeds", *(["steps"] if steps else []), *(t for _, t in columns)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in runs:
        n_steps = r.configs[r.seeds[0]].max_steps or "—"
        if steps and r.configs[r.seeds[0]].max_steps is None:
            n_steps = f"{r.configs[r.seeds[0]].epochs} epochs"
        row = [r.title, str(len(r.metrics)), *([str(n_steps)] if steps else []), *(cell(r, k) for k, _ in columns)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def target_lines(ca: Run) -> list[str]:
    lines = ["| target | class-aware DAE (mean ± sd) | met |", "|---|---|---|"]
    for key, op, bound in TARGETS:
        s = stats(ca, key)
        met = s is not None and (s[0] <= bound if op == "<=" else s[0] >= bound)
        lines.append(f"| {key} {op} {bound} | {cell(ca, key)} | {'yes' if met else '**no**'} |")
    return lines


# The intrinsic screen (issue 12, this machine): one-off training runs of 600 steps (unless the row says), seed 0,
# on synthetic-lit (RGB), each row the options that differ from the plan's intrinsic run (after its own table row);
# quoted, not re-run. Columns: albedo SI-MSE ÷ flat, shading SI-MSE ÷ flat, albedo spread, centred EPE ÷ zero.
INTRINSIC_SCREEN = (
    ("instance norm, 4-d shading code", "1.07", "0.80", "0.74", "1.000"),
    ("BatchNorm, 4-d shading code", "0.53", "0.66", "1.03", "0.999"),
    ("BatchNorm, 3-d shading code (the plan's run)", "0.33", "0.60", "0.91", "0.999"),
    ("BatchNorm, 4-d, no shading smoothness", "0.67", "0.63", "1.04", "1.000"),
    ("BatchNorm, 4-d, albedo code held for 30 % then ramped", "0.84", "0.49", "0.30", "1.000"),
    ("BatchNorm, 4-d, warp smoothness 1.0 instead of 4.0", "0.71", "0.83", "1.10", "0.997"),
    ("the plan's run trained 3x as long (1800 steps)", "0.40", "0.61", "1.00", "0.993"),
    ("data changed: the albedo gradient up to two periods across (was half a period)", "0.92", "0.75", "0.85", "0.999"),
    ("data changed: height fields 3x as steep (sharper shading)", "0.89", "0.90", "1.38", "0.996"),
    ("data changed: albedo = a sharp-edged mask per class in two random colours", "0.69", "0.79", "0.88", "0.999"),
    (
        "class-aware intrinsic (a patched copy of the model, not a trainer option): the class one-hot into "
        "both decoders, 2-d shading code, 900 steps",
        "1.86",
        "0.97",
        "1.08",
        "0.999",
    ),
)


# The second intrinsic screen (issue 12, this machine): why the warp stays idle and what moves it. One-off runs of
# 600 steps (unless the row says), seed 0, evaluated on 512 test images, intrinsic errors over the object's
# pixels; quoted, not re-run. Rows on `synthetic-lit-objects` are reproducible with the trainer's options; rows
# marked "patched" used a modified copy of the generator. Columns as INTRINSIC_SCREEN's ("–": no albedo/shading).
INTRINSIC_WARP_SCREEN = (
    (
        "sanity: the intrinsic model on the synthetic warps (shapes on black, RGB, 2-d albedo code)",
        "–",
        "–",
        "–",
        "0.645",
    ),
    (
        "frame scene, albedo = a class pattern in two random hues (patched), 3-d albedo code",
        "0.33",
        "0.55",
        "0.98",
        "1.000",
    ),
    ("frame scene, one hue with a darker class pattern (patched), 2-d albedo code", "1.63", "1.28", "1.13", "0.993"),
    ("a plain DAE (no albedo/shading split) on the two-hue frame scene (patched), 3-d code", "–", "–", "–", "1.000"),
    ("objects on black in one hue, no pattern (patched), 2-d albedo code", "1.78", "1.87", "1.23", "0.598"),
    ("synthetic-lit-objects, RGB, 3-d albedo code", "1.50", "1.36", "1.69", "0.669"),
    ("the same with --albedo-output sigmoid", "2.14", "2.67", "1.48", "0.548"),
    ("synthetic-lit-objects, grey (1 channel), 2-d albedo code", "1.28", "2.02", "2.00", "0.575"),
    ("the same with --albedo-output sigmoid --shading-weight 3", "1.10", "1.76", "0.85", "0.545"),
    ("the same with a 4-d albedo code", "1.23", "1.87", "2.16", "0.606"),
    ("the same with --shading-weight 1.5", "1.47", "2.22", "1.82", "0.608"),
    ("grey, sigmoid albedo, shading smoothness 3, 4-d albedo code, 2400 steps", "1.08", "1.33", "1.56", "0.439"),
    ("the same in RGB, 2400 steps", "1.33", "1.23", "1.86", "0.486"),
    (
        "grey, sigmoid albedo, smoothness 3, 4-d albedo code, 4800 steps (2000 test images)",
        "1.03",
        "0.93",
        "1.38",
        "0.382",
    ),
    (
        "the plan's objects run (6000 steps, cooled) without the shading floor, seed 0 (2000 test images)",
        "0.97",
        "1.05",
        "1.48",
        "0.369",
    ),
    ("the same, seed 1", "0.90", "1.22", "1.64", "0.392"),
    ("the same, seed 2", "0.96", "1.07", "1.49", "0.385"),
    (
        "the plan's objects run without the floor, with --shading-weight 5, seed 0 (2000 test images)",
        "0.84",
        "0.92",
        "1.41",
        "0.381",
    ),
    ("the same, seed 1", "0.96", "1.32", "1.41", "0.427"),
    ("the same, seed 2", "0.98", "1.14", "1.45", "0.379"),
    (
        "objects (one hue, or RGB synthetic-lit-objects) with --shading-weight 10: collapses, recon MSE 0.075",
        "2.2-6.9",
        "12.1",
        "0.00",
        "1.000",
    ),
    (
        "objects in fully saturated hues (patched), 2-d albedo code: collapses, recon MSE 0.051",
        "4.18",
        "10.1",
        "0.00",
        "0.998",
    ),
    (
        "a saturated object on a dim background of another hue (patched), 3-d albedo code",
        "3.37",
        "5.20",
        "3.45",
        "0.998",
    ),
    ("the same with --albedo-output sigmoid --shading-weight 3", "3.13", "3.82", "3.13", "1.000"),
)


# Intrinsic targets (issue 12): each measure against its baseline. "Below" means by at least 5 %, so a model
# that ties its baseline (an idle warp: centred EPE = zero deformation to 0.1 %) does not pass on noise.
INTRINSIC_TARGETS = (
    ("albedo_si_mse", "albedo_si_mse_flat", "albedo SI-MSE below the flat-shading baseline (albedo = image)"),
    ("shading_si_mse", "shading_si_mse_flat", "shading SI-MSE below the flat baseline (shading = 1)"),
    ("deformation_epe_centred_px", "deformation_epe_zero_px", "centred EPE below zero deformation"),
)
MARGIN = 0.95


def intrinsic_target_lines(run: Run) -> list[str]:
    lines = ["| target | measured (mean ± sd) | baseline | ratio | met |", "|---|---|---|---|---|"]
    for key, base, title in INTRINSIC_TARGETS:
        s, b = stats(run, key), stats(run, base)
        ratio = s[0] / b[0] if s is not None and b is not None and b[0] > 0 else math.nan
        met = ratio <= MARGIN
        lines.append(f"| {title} | {cell(run, key)} | {cell(run, base)} | {ratio:.2f} | {'yes' if met else '**no**'} |")
    spread = stats(run, "albedo_spread")
    met = spread is not None and spread[0] > 0.05
    lines.append(
        f"| albedo that differs between inputs (spread > 0.05) | {cell(run, 'albedo_spread')} | 0 | – | "
        f"{'yes' if met else '**no**'} |"
    )
    return lines


def verdict(by: dict[str, Run]) -> str:
    """The lecture's claim ("the class-aware DAE gives the best results in both reconstruction and learning
    appearance") judged on the 3-seed means; the words follow the numbers."""
    ca, dae, ae = by.get("class-aware"), by.get("dae"), by.get("autoencoder")
    if ca is None or dae is None or ae is None or not (ca.metrics and dae.metrics and ae.metrics):
        return "Not measured: a main run is missing."

    def m(r: Run, k: str) -> float:
        s = stats(r, k)
        return float("nan") if s is None else s[0]

    recon_best = min((ca, dae, ae), key=lambda r: m(r, "recon_mse"))
    recon_ok = recon_best is ca
    appearance_keys = ("swap_ratio", "texture_variance_ratio")
    app_ok = all(m(ca, k) < m(dae, k) for k in appearance_keys) and m(ca, "template_purity") >= m(
        dae, "template_purity"
    )
    words = {(True, True): "**Holds here**", (False, False): "**Does not hold here**"}.get(
        (recon_ok, app_ok), "**Holds only in part here**"
    )
    recon = (
        f"reconstruction MSE: class-aware {m(ca, 'recon_mse'):.4f}, DAE {m(dae, 'recon_mse'):.4f}, plain AE "
        f"{m(ae, 'recon_mse'):.4f} (best: {recon_best.name})"
    )
    app = (
        f"learning appearance (swap ratio / texture variance ratio / template purity): class-aware "
        f"{m(ca, 'swap_ratio'):.3f} / {m(ca, 'texture_variance_ratio'):.3f} / {m(ca, 'template_purity'):.2f}, "
        f"DAE {m(dae, 'swap_ratio'):.3f} / {m(dae, 'texture_variance_ratio'):.3f} / "
        f"{m(dae, 'template_purity'):.2f} (class-aware {'better' if app_ok else 'not better'} on all three)"
    )
    return (
        f"{words}: {recon}; {app}. The class-aware model is trained with the labels, an extra supervised "
        "input the others do not get; the plain autoencoder has no shape/appearance split to judge."
    )


def write(out: Path, plan: list[Run], figures: dict[str, str], *, command: str, quick: bool, total_s: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    by = {r.name: r for r in plan}
    groups = {
        g: [r for r in plan if r.group == g and r.metrics]
        for g in ("main", "search", "fashion", "synthetic", "intrinsic")
    }
    lines = [
        "# Results: a DAE that separates shape from appearance",
        "",
        f"Generated by `{command}` (`make results`) on {time.strftime('%Y-%m-%d %H:%M')} in "
        f"{total_s / 60:.1f} min (runs trained earlier by the same command are reused). Do not edit by hand.",
        "",
    ]
    kept = [f"{r.name} (seed {', '.join(map(str, sorted(r.recorded)))})" for r in plan if r.recorded]
    if kept:
        lines += [
            "Not trained on the machine that wrote this page, so their metrics (and figures) are the ones recorded "
            "by the run that trained them (results.json): " + "; ".join(kept) + ".",
            "",
        ]
    if quick:
        lines += [
            "> **--quick smoke run**: tiny slices, tiny nets, a few steps. The numbers only show that the "
            "pipeline runs.",
            "",
        ]
    lines += [
        "## Machine",
        "",
        f"{platform.platform()}; {os.cpu_count()} CPUs; torch {torch.__version__}.",
        "",
        "## The recipe",
        "",
        "Defaults of `python -m training fit` (training/options.py), every one a named option:",
        "",
        "- `--appearance-dim 2 --shape-dim 142`: a tiny appearance code (same 144 in all as the published "
        "16 + 128); with 16 the texture decoder reconstructs MNIST alone and the warp stays idle;",
        "- `--appearance-hold 0.3 --appearance-ramp 0.075`: the appearance code is held at 0 for the first 30 % "
        "of the steps (1.2 of 4 epochs: the texture decoder can paint only one template per class, so the warp "
        "must explain every within-class difference), then ramped in linearly over 7.5 % (0.3 epochs); "
        "`--appearance-dropout` zeroes single samples' codes afterwards (0 by default);",
        "- `--smooth-weight 1.0`: the release's smoothness strength at 32×32, now the same penalty per pixel "
        "of deformation at every size and batch (training/losses.py); `--class-weight 0.05`;",
        "- `--epochs 4` at batch 64, Adam 2e-4 (betas 0.5, 0.999); `--texture-lr`/`--deformation-lr` scale "
        "each decoder's rate and `--affine-stage` trains only the affine head first (affine + integral).",
        "",
        "## Recipe search",
        "",
        "Rows of the quick experiment filed with issue 12 (its own modified trainer; quoted, not re-run):",
        "",
        "| recipe | steps | recon MSE | accuracy | swap ratio | texture var. ratio | appearance share |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | " + " | ".join(r[2:]) + " |" for r in ISSUE_ROWS]
    if groups["search"]:
        lines += [
            "",
            "Screen runs of this trainer (class-aware, one seed, one epoch; evaluated on the whole test set):",
            "",
        ]
        lines += table(groups["search"], MAIN)
    lines += ["", "## MNIST test, mean ± sd over seeds", ""]
    lines += table(groups["main"], MAIN)
    lines += [
        "",
        "Swap ratio = MSE(decode(shape B, appearance A), recon B) / MSE(…, recon A) over same-class pairs "
        "(below 1: the shape latent moves the image to B); texture variance ratio = within-class variance "
        "of the textures over that of the reconstructions; appearance share = MSE(decode(shape A, "
        "appearance B), recon A) / MSE(recon B, recon A); warp gain = 1 − MSE(recon) / MSE(texture at its "
        "class-mean grid); see training/evaluate.py.",
        "",
    ]
    if "class-aware" in by and by["class-aware"].metrics:
        lines += ["### Targets (issue 12)", "", *target_lines(by["class-aware"]), ""]
    lines += [
        "## The lecture's claim",
        "",
        'Lecture: on MNIST the class-aware DAE "gives the best results both in reconstruction and in learning '
        'appearance".',
        "",
        verdict(by),
        "",
    ]
    if groups["fashion"]:
        lines += [
            "## Fashion-MNIST",
            "",
            "Debian's `dataset-fashion-mnist`, `--data fashion-mnist`, the same recipe:",
            "",
            *table(groups["fashion"], MAIN),
            "",
        ]
    if groups["synthetic"]:
        lines += [
            "## Synthetic warps (ground truth)",
            "",
            "Ten textures warped by known smooth fold-free fields. The learnt template frame is only defined "
            "up to a global transform, so deformations are compared after removing each class's mean grid "
            "(centred) or after the best linear frame; the zero-deformation baseline is the centred truth "
            'against 0. Target: centred EPE ≤ 0.6 × the baseline. "Where visible": the same over the pixels '
            "within 2 px of image content; on the black background any grid gives the same picture, so no "
            "method can see the warp there and only the smoothness prior fills it in.",
            "",
            *table(groups["synthetic"], SYNTHETIC),
            "",
        ]
    if groups["intrinsic"]:
        lines += [
            "## Intrinsic DAE on synthetic-lit",
            "",
            "Albedo and shading are compared as seen in the image (each warped by its grid, predicted or "
            "true: the template frame is only defined up to a transform). "
            "SI = scale-invariant MSE (albedo × shading is defined up to a per-image scale); the flat "
            "baselines assume constant shading (albedo = image, shading = 1); albedo spread = within-class "
            "variance of the predicted albedo over the true albedo's (0 = every input gets the same). Targets "
            "(issue 12): albedo and shading SI-MSE below their flat baselines, centred EPE below zero "
            "deformation, an albedo spread above 0.",
            "",
            *table(groups["intrinsic"], INTRINSIC),
            "",
        ]
        for run in groups["intrinsic"]:
            lines += [f"Targets, {run.title} (ratio = measured ÷ baseline; met at {MARGIN} or below):", ""]
            lines += [*intrinsic_target_lines(run), ""]
        lines += [
            "What was tried (600 steps unless the row says, seed 0, one run each; quoted from the screen that "
            "chose the plan's options): the data's albedo is a gradient between two colours (nine numbers per "
            "image); with an earlier albedo of independent waves in each channel (dozens of numbers) no run beat "
            "the image itself as albedo. Instance norm removes each image's colour (even a plain autoencoder "
            "stays grey), so the run uses BatchNorm. The warp stays idle in every run (centred EPE within 0.7 % "
            "of zero deformation): the albedo and shading codes paint each image's structure directly. Neither "
            "3x the training, nor the class as a third latent, nor three changes to the data that make the warp "
            "more visible (a finer albedo gradient, steeper height fields, an albedo with sharp edges) moved it; "
            "at 600-1800 steps the decoders are still learning the shapes (blurred in the training samples), and "
            "a warp only pays once the texture is sharp.",
            "",
            "| options | albedo SI ÷ flat | shading SI ÷ flat | albedo spread | centred EPE ÷ zero |",
            "|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in INTRINSIC_SCREEN),
            "",
            "Why the warp stays idle, and what moves it (a second screen: 600 steps unless the row says, seed 0, "
            "512 test images; the albedo and shading errors count only the object's pixels, where the shading can "
            "be seen). The model can learn warps: on the synthetic warps it does (row 1). The frame scene cannot "
            "teach them: a smooth warp of a smooth full-frame picture changes it by a mean squared error of 0.0055 "
            "(0.054 on the synthetic warps), less than the decoders' own error, and sharper full-frame albedos or "
            "a plain DAE leave the warp just as idle. On `synthetic-lit-objects` (a patterned silhouette per "
            "class on black; image vs unwarped texture 0.019) every run that trains learns the warp (0.55-0.67 "
            "of zero deformation), but not the decomposition: the albedo goes white in every channel and the "
            "shading paints the object, so both errors stay above their flat baselines. A white Hardtanh albedo "
            "has no gradient at all (`--albedo-output sigmoid` keeps one); a stronger shading smoothness moves "
            "the silhouette into the albedo (grey, smoothness 3: albedo 1.10, shading 1.76) and at 10 training "
            "collapses; no coloured run learned colour on black. Longer training helps every measure (grey, 4-d "
            "code: albedo / shading / EPE 1.23 / 1.87 / 0.61 at 600 steps, 1.08 / 1.33 / 0.44 at 2400, 0.98 / 0.97 "
            "/ 0.39 at 3900, 1.03 / 0.93 / 0.38 at 4800: the object and its pattern in the albedo, a smooth lit "
            "shading), so at 4800 steps the shading and the warp meet their targets and the albedo sits at its "
            "baseline; no single-seed run met the albedo, shading and warp targets at once. The plan's objects run "
            "without a shading floor (the same options, 6000 steps, the last quarter cooling the learning rate to "
            "0; 3 seeds, about 75 min for the three in parallel on 2 cores) met the albedo (0.90-0.97 per seed), "
            "warp (0.37-0.39) and spread targets, and missed the shading one in every seed (1.05, 1.22, 1.07 of "
            "flat): the shading kept a faint outline of the silhouette and some albedos part of the lighting. "
            "At 600 steps the same plan run had albedo 1.54, "
            "shading 5.55 and one seed of three collapsed; none collapsed at 6000. A stronger shading smoothness "
            "in the same plan (5 instead of 3, 3 seeds, 78 min) did not close the gap over 3 seeds: seed 0 met all "
            "three targets at once (albedo / shading / EPE 0.84 / 0.92 / 0.38), seeds 1 and 2 missed the shading "
            "one (1.32, 1.14); the seeds differ more than the two options do. What the missing seeds shared was "
            "in the pictures (seed 1 most clearly): a white albedo around the object and a shading that goes "
            "dark there. On black a shading of 0 explains a pixel as well as an albedo of 0, so the shading could "
            "take the silhouette. A floor under the shading (`--shading-floor 0.05`, an ambient light; the data's "
            "is 0.1) leaves every black pixel to the albedo: the plan's run with it (the table above) meets the "
            "albedo, shading and warp targets in every seed (albedo 0.93 / 0.71 / 0.82, shading 0.85 / 0.72 / "
            "0.78 of flat, EPE 0.37 / 0.46 / 0.40 of zero; 80 min for the three in parallel). What the "
            "pictures still show: part of the lighting stays in some albedos (the dome's), and the shading is "
            "fainter than the true one, nearly flat on several objects.",
            "",
            "| options | albedo SI ÷ flat | shading SI ÷ flat | albedo spread | centred EPE ÷ zero |",
            "|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in INTRINSIC_WARP_SCREEN),
            "",
        ]
    lines += ["## Figures", ""]
    for caption, name in figures.items():
        lines += [f"**{caption}**", "", f"![{caption}](figures/{name})", ""]
    lines += ["## Reproduce", "", "```"]
    for r in plan:
        for seed in r.seeds:
            cfg = r.config(seed)
            lines += [cfg.command, f"python -m training evaluate --checkpoint {cfg.out}/last.pt"]
    lines += ["```", ""]
    (out / "results.md").write_text("\n".join(lines))
    raw = {
        r.name: {
            "title": r.title,
            "group": r.group,
            "changes": r.changes,
            "seeds": {str(s): {"metrics": r.metrics.get(s, {}), "wall_s": r.wall_s.get(s)} for s in r.seeds},
        }
        for r in plan
    }
    doc = {"command": command, "quick": quick, "runs": raw, "figures": figures}
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
